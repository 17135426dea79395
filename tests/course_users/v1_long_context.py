"""A lollms-client 1.x user's script: a task over a text longer than the context, with its steps.

Written as for lollms-client 1.x (``from lollms_client import LollmsClient, MSG_TYPE``);
only the import line differs.
"""

from lollms_magics import MSG_TYPE, LollmsClient

lc = LollmsClient(
    llm_binding_name="ollama",
    llm_binding_config={"host_address": "http://localhost:11434", "model_name": "", "ctx_size": 2048},
)


def on_step(chunk, msg_type, params=None, **kwargs):
    if msg_type in (MSG_TYPE.MSG_TYPE_STEP, MSG_TYPE.MSG_TYPE_STEP_START, MSG_TYPE.MSG_TYPE_STEP_END):
        print(f"[{msg_type.name}] {chunk} {params or {}}")
    return True


text = "\n\n".join(
    f"Section {i}. The harbour of town {i} ships {i * 10} tonnes of grain each year, by boat and by rail."
    for i in range(1, 160)
)
result = lc.long_context_processing(
    text, "List the towns and the grain each ships.", context_fill_percentage=0.5,
    expected_generation_tokens=256, streaming_callback=on_step,
)
print(f"Result: {result}")

short = lc.long_context_processing("The sky is blue.", "What colour is the sky?", streaming_callback=on_step)
print(f"Short: {short}")
