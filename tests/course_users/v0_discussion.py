"""A lollms-client 0.x user's script: a discussion, a picture, another model, the server's lists.

Written as for lollms-client 0.17-0.28 (``from lollms_client import LollmsClient``);
only the import line differs.
"""

from lollms_magics import MSG_TYPE, LollmsClient

lc = LollmsClient(binding_name="lollms", host_address="http://localhost:9600")

discussion = (
    f"{lc.system_full_header}You are a geography tutor.\n"
    f"{lc.user_full_header}Name the capital of France.\n"
    f"{lc.ai_full_header}Paris.\n"
    f"{lc.user_full_header}And the capital of Italy?\n"
    f"{lc.ai_full_header}"
)
answer = lc.generate_text(discussion, split=True, n_predict=64)
print(f"Discussion: {answer}")

pieces = []


def on_chunk(chunk, msg_type, params=None, metadata=None):
    if msg_type == MSG_TYPE.MSG_TYPE_CHUNK:
        pieces.append(chunk)
    return True


streamed = lc.generate_text(discussion, split=True, streaming_callback=on_chunk)
print(f"Streamed: {''.join(pieces) == streamed == answer}")

models = lc.listModels()
print("Models:", ", ".join(m["model_name"] for m in models))
lc.binding.model_name = models[-1]["model_name"]
print(f"Switched to: {lc.binding.model_name}")
answer = lc.generate_text("Describe this picture.", images=["photo.png"])
print(f"Picture: {answer}")

personalities = lc.listMountedPersonalities()
if isinstance(personalities, dict) and personalities.get("status") is False:
    print(f"Personalities: {personalities['error']}")
else:
    print(f"Personalities: {personalities}")
