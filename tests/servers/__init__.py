"""Faithful loopback HTTP servers for the protocols lollms_magics speaks.

Each server binds 127.0.0.1 on an ephemeral port, records requests and can
be told to fail in protocol-accurate ways. See ``base.py`` for the shared
knobs and magic model names.
"""

from .a1111 import A1111Server
from .base import FAULT_NAMES, LoopbackServer, Recorded, tiny_png
from .comfyui import ComfyUIServer
from .lollms_server import DEFAULT_KEY as LOLLMS_KEY
from .lollms_server import LollmsServer
from .lollms_webui import LollmsWebuiServer
from .ollama import OllamaServer
from .openai_compat import OpenAIServer

SERVERS = {
    "openai": OpenAIServer,
    "lollms": LollmsServer,
    "lollms_webui": LollmsWebuiServer,
    "ollama": OllamaServer,
    "a1111": A1111Server,
    "comfyui": ComfyUIServer,
}

__all__ = [
    "FAULT_NAMES",
    "LOLLMS_KEY",
    "SERVERS",
    "A1111Server",
    "ComfyUIServer",
    "LollmsServer",
    "LollmsWebuiServer",
    "LoopbackServer",
    "OllamaServer",
    "OpenAIServer",
    "Recorded",
    "tiny_png",
]
