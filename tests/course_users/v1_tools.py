"""A lollms-client 1.x user's script: the model calls Python functions (generate_with_tools).

Written as for lollms-client 1.x (``from lollms_client import LollmsClient, MSG_TYPE``);
only the import line differs.
"""

from lollms_magics import MSG_TYPE, LollmsClient

lc = LollmsClient(
    llm_binding_name="ollama",
    llm_binding_config={"host_address": "http://localhost:11434", "model_name": ""},
)


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}, 22 C"


def add(a: int, b: int) -> int:
    return a + b


def on_event(chunk, msg_type, params=None, **kwargs):
    if msg_type == MSG_TYPE.MSG_TYPE_TOOL_CALL:
        print(f"Calling {params['name']} with {params['parameters']}")
    elif msg_type == MSG_TYPE.MSG_TYPE_TOOL_OUTPUT:
        print(f"Got {params}")
    return True


tools = [
    {"name": "get_weather", "callable": get_weather, "description": "Current weather for a city"},
    {"name": "add", "callable": add, "description": "Add two integers"},
]
result = lc.generate_with_tools("What is the weather in Paris, and 2 + 3?", tools=tools,
                                system_prompt="Use the tools.", streaming_callback=on_event)
print(f"Response: {result['response']}")
print("Calls:", [(c["round"], c["name"], c["parameters"]) for c in result["tool_calls"]])
print("Results:", [r["result"] for r in result["tool_results"]])
print(f"Rounds: {result['rounds']}")

pending = lc.generate_with_tools("Weather in Rome?", tools=tools[:1], auto_execute=False)
call = pending.get("pending_tool")
print("Pending:", call and (call["name"], call["parameters"], bool(call["raw"])), pending["tool_results"])
