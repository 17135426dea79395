"""The binding registry: names to binding classes, found through entry points.

Built-in and third-party bindings are declared the same way, in the entry
point group ``lollms_magics.bindings``::

    [project.entry-points."lollms_magics.bindings"]
    mybackend = "my_package.binding:MyBinding"

A class is imported only when its binding is first asked for, so listing the
names costs no import of httpx or of any backend library.
"""

from __future__ import annotations

import importlib
import warnings
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from ..errors import LollmsMagicsWarning, MissingDependencyError, UnknownBindingError

if TYPE_CHECKING:
    from .base import Binding

__all__ = ["Binding", "binding_class", "binding_names", "get_binding"]

GROUP = "lollms_magics.bindings"

# The built-in bindings, also declared in pyproject.toml. Kept here so that a
# source checkout that was never installed still finds them.
BUILTIN: dict[str, str] = {
    "lollms": "lollms_magics.bindings.lollms:LollmsBinding",
    "ollama": "lollms_magics.bindings.ollama:OllamaBinding",
    "openai": "lollms_magics.bindings.openai:OpenAIBinding",
    "llamacpp": "lollms_magics.bindings.llamacpp:LlamaCppBinding",
}

# What to install when a binding's module fails to import.
EXTRAS: dict[str, str] = {"llamacpp": "local"}

_registry: dict[str, str] | None = None


def _targets() -> dict[str, str]:
    global _registry
    if _registry is None:
        found = dict(BUILTIN)
        for ep in entry_points(group=GROUP):
            if ep.name in BUILTIN and ep.value != BUILTIN[ep.name]:
                warnings.warn(
                    f"binding {ep.name!r} from {ep.value} is ignored: a built-in has that name",
                    LollmsMagicsWarning,
                    stacklevel=3,
                )
                continue
            found[ep.name] = ep.value
        _registry = found
    return _registry


def binding_names() -> list[str]:
    """The names of the installed bindings, built-in ones first."""
    targets = _targets()
    return [*BUILTIN, *sorted(set(targets) - set(BUILTIN))]


def binding_class(name: str) -> type[Binding]:
    """Import and return the class of binding ``name``."""
    target = _targets().get(name)
    if target is None:
        raise UnknownBindingError(
            f"no binding named {name!r}; the bindings are: {', '.join(binding_names())}"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = EXTRAS.get(name)
        how = f"pip install 'lollms-magics[{extra}]'" if extra else f"install {exc.name or module_name}"
        raise MissingDependencyError(
            f"binding {name!r} needs {exc.name or module_name}: {how}"
        ) from exc
    cls: type[Binding] = getattr(module, attr)
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
