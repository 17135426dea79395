"""A lollms-client 1.x user's script: a discussion with named speakers, messages, models switched.

Written as for lollms-client 1.x (``from lollms_client import LollmsClient``);
only the import line differs.
"""

from lollms_magics import LollmsClient

lc = LollmsClient(
    llm_binding_name="lollms",
    llm_binding_config={"host_address": "http://localhost:9642", "model_name": ""},
    user_name="alice",
    ai_name="lollms",
)

# lollms-client 1.x discussions export "!@>sender:" headers, each followed by a line break.
transcript = (
    "!@>system:\nYou are a geography tutor.\n"
    "!@>alice:\nName the capital of France.\n"
    "!@>lollms:\nParis.\n"
    "!@>alice:\nAnd the capital of Italy?\n"
    "!@>lollms:\n"
)
answer = lc.generate_text(transcript, split=True, user_keyword="!@>alice:", ai_keyword="!@>lollms:")
print(f"Discussion: {answer}")

answer = lc.generate_from_messages([
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a moon of Mars."},
])
print(f"Messages: {answer}")

models = lc.list_models()
lc.llm.model_name = models[-1]["model_name"]
print(f"Switched to: {lc.llm.model_name} ({lc.get_model_details()['model_name']})")
print(f"Picture: {lc.generate_text('Describe this picture.', images=['photo.png'])}")
lc.switch_model(models[0]["model_name"])
print(f"Back to: {lc.llm.model_name}")
print(f"Again: {lc.generate_text('Say hi.')}")
print(f"Personalities: {lc.listMountedPersonalities()}")
