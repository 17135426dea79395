"""lollms-magics: talk to language and image models from IPython and Jupyter.

In a notebook::

    %load_ext lollms_magics

    %%lollms
    Explain what a context window is, in two sentences.

From Python::

    from lollms_magics import Session
    session = Session("ollama", model="llama3.2")
    for piece in session.ask("Say hello"):
        print(piece, end="")

The layers, top to bottom: ``ipython`` (magics, display), ``core`` (the
Session, its conversation and keys), ``bindings`` (one module per backend on
a shared HTTP base), ``transport`` (clients, retries, framing), and the plain
types of this top level (``errors``, ``options``, ``types``, ``response``,
``images``). Each imports only from below.

Importing this package is cheap: httpx, PIL, ipywidgets, docling and
llama_cpp are imported only when a feature first needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module that defines it; each is imported on first access.
_EXPORTS: dict[str, str] = {
    "get_binding": "lollms_magics.bindings",
    "binding_names": "lollms_magics.bindings",
    "Binding": "lollms_magics.bindings.base",
    "ModelInfo": "lollms_magics.schema",
    "Response": "lollms_magics.response",
    "Session": "lollms_magics.core.session",
    "default_session": "lollms_magics.core.session",
    "set_default_session": "lollms_magics.core.session",
    "summarize": "lollms_magics.core.session",
    "tool": "lollms_magics.core.tools",
    "LollmsMagicsError": "lollms_magics.errors",
    "BindingError": "lollms_magics.errors",
    "LollmsClient": "lollms_magics.compat.client",
    "MSG_TYPE": "lollms_magics.compat.enums",
    "ELF_GENERATION_FORMAT": "lollms_magics.compat.enums",
    "ELF_COMPLETION_FORMAT": "lollms_magics.compat.enums",
    "SENDER_TYPES": "lollms_magics.compat.enums",
    # lollms-client's names for what is out of scope here: importing works as in a
    # user's script, making one fails in one line saying what to use instead.
    "LollmsDiscussion": "lollms_magics.compat.refusals",
    "LollmsDataManager": "lollms_magics.compat.refusals",
    "LollmsPersonality": "lollms_magics.compat.refusals",
}

__all__ = [
    "ELF_COMPLETION_FORMAT",
    "ELF_GENERATION_FORMAT",
    "MSG_TYPE",
    "SENDER_TYPES",
    "Binding",
    "BindingError",
    "LollmsClient",
    "LollmsMagicsError",
    "ModelInfo",
    "Response",
    "Session",
    "binding_names",
    "default_session",
    "get_binding",
    "load_ipython_extension",
    "panels",
    "set_default_session",
    "summarize",
    "tool",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from . import panels
    from .bindings import binding_names, get_binding
    from .bindings.base import Binding
    from .compat.client import LollmsClient
    from .compat.enums import ELF_COMPLETION_FORMAT, ELF_GENERATION_FORMAT, MSG_TYPE, SENDER_TYPES
    from .core.session import Session, default_session, set_default_session
    from .core.tools import tool
    from .errors import BindingError, LollmsMagicsError
    from .response import Response
    from .schema import ModelInfo


def __getattr__(name: str) -> Any:
    if name == "panels":  # a module; ipywidgets loads only when a panel is built
        return importlib.import_module(".panels", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lollms_magics' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%lollms`` / ``%%lollms`` magics (called by ``%load_ext``)."""
    import os

    from .ipython.magics import LollmsMagics

    if os.environ.get("LOLLMS_MAGICS_REPLAY") or os.environ.get("LOLLMS_MAGICS_RECORD"):
        from .core.session import default_session
        from .ipython.replay import start_from_environment

        start_from_environment(default_session())
    ipython.register_magics(LollmsMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Undo :func:`load_ipython_extension`: remove the magics and close their connections."""
    from .ipython.magics import LollmsMagics

    manager = ipython.magics_manager
    manager.registry.pop(LollmsMagics.__name__, None)
    for kind in ("line", "cell"):
        manager.magics[kind].pop("lollms", None)
    for magics in [c for c in ipython.configurables if isinstance(c, LollmsMagics)]:
        magics.close()
        ipython.configurables.remove(magics)
