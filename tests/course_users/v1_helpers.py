"""A lollms-client 1.x user's script: structured content, code files, yes/no and multiple choice.

Written as for lollms-client 1.x (``from lollms_client import LollmsClient``);
only the import line differs.
"""

from lollms_magics import LollmsClient

lc = LollmsClient(
    llm_binding_name="ollama",
    llm_binding_config={"host_address": "http://localhost:11434", "model_name": ""},
)

person = lc.generate_structured_content(
    "Extract the person: Ada Lovelace, 36, mathematician.",
    schema={"name": {"type": "string"}, "age": {"type": "integer"}},
    system_prompt="You extract data precisely.",
)
print(f"Person: {person}")

code = lc.generate_code("Write a function that adds two numbers.", system_prompt="You write Python 3.",
                        language="python")
print(f"Code:\n{code}")
for f in lc.generate_codes("Write hello world in Python and JavaScript."):
    print(f"{f['file_name']} [{f['language']}] complete={f['is_complete']}")

print("Yes/no:", lc.yes_no("Is Paris in France?", context="Paris is the capital of France.",
                           system_prompt="You answer geography questions.", return_explanation=True))
print("Choice:", lc.multichoice_question("Which is a planet?", ["The Moon", "Mars", "The Sun"],
                                         return_explanation=True))
print("Ranking:", lc.multichoice_ranking("Which are planets, most massive first?",
                                         ["The Moon", "Mars", "Jupiter"]))
print("Thinking:", lc.remove_thinking_blocks("<think>hmm</think>Mars."))
