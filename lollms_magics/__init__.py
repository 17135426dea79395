"""lollms-magics: talk to language and image models from IPython and Jupyter.

In a notebook::

    %load_ext lollms_magics

    %%lollms
    Explain what a context window is, in two sentences.

From Python::

    from lollms_magics import get_binding
    binding = get_binding("ollama", model="llama3.2")
    for piece in binding.generate("Say hello"):
        print(piece, end="")

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
    "ModelInfo": "lollms_magics.bindings.base",
    "Response": "lollms_magics.response",
    "LollmsMagicsError": "lollms_magics.errors",
    "BindingError": "lollms_magics.errors",
}

__all__ = [
    "Binding",
    "BindingError",
    "LollmsMagicsError",
    "ModelInfo",
    "Response",
    "binding_names",
    "get_binding",
    "load_ipython_extension",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from .bindings import binding_names, get_binding
    from .bindings.base import Binding, ModelInfo
    from .errors import BindingError, LollmsMagicsError
    from .response import Response


def __getattr__(name: str) -> Any:
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
    from .magics import LollmsMagics

    ipython.register_magics(LollmsMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """Undo :func:`load_ipython_extension`: remove the magics and close their connections."""
    from .magics import LollmsMagics

    manager = ipython.magics_manager
    manager.registry.pop(LollmsMagics.__name__, None)
    for kind in ("line", "cell"):
        manager.magics[kind].pop("lollms", None)
    for magics in [c for c in ipython.configurables if isinstance(c, LollmsMagics)]:
        magics.close()
        ipython.configurables.remove(magics)
