"""A lollms-client 0.x user's script: code, files, code blocks, yes/no and multiple choice.

Written as for lollms-client 0.17-0.28 (``from lollms_client import LollmsClient``);
only the import line differs.
"""

from lollms_magics import LollmsClient

lc = LollmsClient(binding_name="lollms", host_address="http://localhost:9600")

code = lc.generate_code("Write a function that adds two numbers.", language="python")
print(f"Code:\n{code}")
code = lc.generate_code("Write a long function.", language="python")
print(f"Long code:\n{code}")

for c in lc.generate_codes("Write hello world in Python and JavaScript."):
    print(f"File {c['file_name']} ({c['type']}): {c['content']}")

text = "Here:\n```python\nprint('hi')\n```\n<file_name>b.js</file_name>\n```javascript\nconsole.log(1)"
for b in lc.extract_code_blocks(text):
    print(b["index"], b["file_name"] or "-", b["type"], b["is_complete"], b["content"])

# 0.x order: question, context, max_answer_length, conditionning, return_explanation
print("Yes/no:", lc.yes_no("Is Paris in France?", "Paris is the capital of France.", None,
                           "You answer geography questions."))
print("Yes/no explained:", lc.yes_no("Is Paris in France?", return_explanation=True))
print("Choice:", lc.multichoice_question("Which is a planet?", ["The Moon", "Mars", "The Sun"],
                                         "Astronomy basics."))
