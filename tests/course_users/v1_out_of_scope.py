"""A lollms-client 1.x user's script reaching for what lollms-magics leaves out.

Written as for lollms-client 1.x (``from lollms_client import LollmsClient,
LollmsDiscussion``); only the import lines differ.
"""

from lollms_magics import LollmsClient
from lollms_magics.compat import LollmsDiscussion

lc = LollmsClient(llm_binding_name="ollama", llm_binding_config={"host_address": "http://localhost:11434"})
calls = {
    "speech": lambda: lc.generate_audio("Hello"),
    "transcription": lambda: lc.transcribe_audio("hello.wav"),
    "music": lambda: lc.generate_music("A calm piano piece"),
    "video": lambda: lc.generate_video("A cat"),
    "mcp": lambda: lc.generate_with_mcp("What time is it?"),
    "discussion": lambda: LollmsDiscussion(lc),
    "chat": lambda: lc.chat(None),
    "zoo": lambda: lc.get_zoo(),
    "tool file": lambda: lc.generate_with_tools("What time is it?", tools=["clock_tool.py"]),
}
for name, call in calls.items():
    try:
        call()
    except NotImplementedError as exc:
        print(f"{name}: {exc}")
print(f"tts={lc.tts} stt={lc.stt}")
