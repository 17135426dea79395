"""lollms-client's calls outside lollms-magics' scope: each fails in one line saying what to use.

lollms-magics does text, pictures in, image generation, long texts,
structured content, code helpers and tools. lollms-client's personality
zoo, discussions stored in a database, MCP, speech, music and video are not
there: calling them raises :class:`~lollms_magics.errors.UnsupportedFeatureError`
(a ``NotImplementedError``) at once, with one line naming what lollms-magics
offers instead, rather than an ``AttributeError`` or a failure later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from ..errors import UnsupportedFeatureError

__all__ = [
    "OUT_OF_SCOPE", "LollmsDataManager", "LollmsDiscussion", "LollmsPersonality", "OutOfScope", "refuse",
]

_CONVERSATION = "lc.ask(...) keeps a conversation in memory, and %lollms history --export saves it to a file"
_SPEECH = "lollms-magics has text and image bindings only"
_MCP = "lc.generate_with_tools(prompt, tools=[f, g]) lets the model call Python functions"
# lollms-client call -> (what it is, what lollms-magics offers instead).
OUT_OF_SCOPE: dict[str, tuple[str, str]] = {
    "chat": ("discussions, LollmsDiscussion", _CONVERSATION),
    "generate_text_with_rag": ("its RAG", "lc.ask(prompt, docs=...) answers from documents (--docs)"),
    "embed": ("embeddings", "lc.ask(prompt, docs=...) indexes documents itself"),
    "get_zoo": ("the model zoo", "lc.list_models() lists the server's models"),
    "download_from_zoo": ("the model zoo", "install models with the server (ollama pull...)"),
    "generate_with_mcp": ("MCP", _MCP),
    "update_mcp_binding": ("MCP", _MCP),
    "generate_audio": ("speech, TTS", _SPEECH),
    "transcribe_audio": ("speech to text, STT", _SPEECH),
    "generate_music": ("music, TTM", _SPEECH),
    "generate_video": ("video, TTV", _SPEECH),
    "update_tts_binding": ("speech, TTS", _SPEECH),
    "update_stt_binding": ("speech to text, STT", _SPEECH),
    "update_ttm_binding": ("music, TTM", _SPEECH),
    "update_ttv_binding": ("video, TTV", _SPEECH),
    "mount_tts": ("speech, TTS", _SPEECH),
    "mount_stt": ("speech to text, STT", _SPEECH),
    "mount_ttm": ("music, TTM", _SPEECH),
    "mount_ttv": ("video, TTV", _SPEECH),
    "edit_image": ("image editing", "lc.tti.generate_image(prompt, ...) makes pictures from text"),
    "generate_omni": ("omni generation", "lc.tti.generate_image(prompt, ...) returns the picture's bytes"),
    "LollmsDiscussion": ("discussions stored in a database", _CONVERSATION),
    "LollmsDataManager": ("discussions stored in a database", _CONVERSATION),
    "LollmsPersonality": ("the personality zoo",
                          "a system prompt (system_prompt=, %%lollms --system) gives the model a role; "
                          "lollms-webui's mounted ones are listed by lc.listMountedPersonalities()"),
}


def refuse(name: str) -> NoReturn:
    """Raise the one-line refusal of lollms-client's ``name``."""
    what, instead = OUT_OF_SCOPE[name]
    raise UnsupportedFeatureError(f"{name}: not in lollms-magics ({what}); {instead}")


def _refusal(name: str) -> Callable[..., Any]:
    def call(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        refuse(name)

    call.__name__ = name
    what, instead = OUT_OF_SCOPE[name]
    call.__doc__ = f"Not here: {what}. {instead[0].upper()}{instead[1:]}."
    return call


class OutOfScope:
    """lollms-client's out-of-scope methods, each raising its one-line refusal."""


for _name in OUT_OF_SCOPE:
    if _name[0].islower():
        setattr(OutOfScope, _name, _refusal(_name))


class _Refused:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        refuse(type(self).__name__)


class LollmsDiscussion(_Refused):
    """Not here: lollms-client's database-backed discussion (see :data:`OUT_OF_SCOPE`)."""


class LollmsDataManager(_Refused):
    """Not here: lollms-client's discussion database (see :data:`OUT_OF_SCOPE`)."""


class LollmsPersonality(_Refused):
    """Not here: lollms-client's personality (see :data:`OUT_OF_SCOPE`)."""
