"""The binding registry: names to binding classes, found through entry points.

Built-in and third-party bindings are declared the same way, in the entry
point group ``lollms_magics.bindings``::

    [project.entry-points."lollms_magics.bindings"]
    mybackend = "my_package.binding:MyBinding"

A class is imported only when its binding is first asked for, so listing the
names costs no import of httpx or of any backend library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..plugins import Registry

if TYPE_CHECKING:
    from .base import Binding

__all__ = ["BUILTIN", "REGISTRY", "Binding", "binding_class", "binding_names", "get_binding"]

GROUP = "lollms_magics.bindings"

BUILTIN: dict[str, str] = {
    "lollms": "lollms_magics.bindings.lollms:LollmsBinding",
    "ollama": "lollms_magics.bindings.ollama:OllamaBinding",
    "openai": "lollms_magics.bindings.openai:OpenAIBinding",
    "llamacpp": "lollms_magics.bindings.llamacpp:LlamaCppBinding",
    "colab": "lollms_magics.bindings.colab:ColabBinding",
}

# Built-in name -> the extra to install when its module fails to import.
REGISTRY = Registry(GROUP, BUILTIN, "binding", extras={"llamacpp": "local"})


def binding_names() -> list[str]:
    """The names of the installed bindings, built-in ones first."""
    return REGISTRY.names()


def binding_class(name: str) -> type[Binding]:
    """Import and return the class of binding ``name``."""
    cls: type[Binding] = REGISTRY.load(name)
    return cls


def get_binding(
    name: str,
    host: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    **config: Any,
) -> Binding:
    """Create the binding ``name`` (``"lollms"``, ``"ollama"``, ``"openai"``, ``"llamacpp"``...).

    ``host``, ``model`` and ``api_key`` default to the binding's environment
    variables and usual local address; ``config`` holds binding settings
    such as ``read_timeout``, ``connect_timeout`` or ``max_retries``.
    """
    return binding_class(name)(host=host, model=model, api_key=api_key, **config)


def __getattr__(name: str) -> Any:
    if name == "Binding":  # loaded on demand: it imports httpx
        from .base import Binding

        return Binding
    raise AttributeError(name)
