"""The image (text-to-image) binding registry, found through entry points.

Built-in and third-party image bindings are declared the same way, in the
entry point group ``lollms_magics.image_bindings``::

    [project.entry-points."lollms_magics.image_bindings"]
    mypainter = "my_package.painter:MyImageBinding"

The built-ins speak to LoLLMs (``lollms``: lollms-webui on 9600 and the new
server on 9642), OpenAI and compatible servers (``openai``), AUTOMATIC1111,
Forge and SD.Next (``a1111``) and ComfyUI (``comfyui``). A class is imported
only when its binding is first asked for, so listing the names imports
neither httpx nor Pillow.
"""

from __future__ import annotations

import importlib
import warnings
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from ..errors import LollmsMagicsWarning, MissingDependencyError, UnknownBindingError

if TYPE_CHECKING:
    from .base import ImageBinding

__all__ = ["BUILTIN", "GROUP", "get_image_binding", "image_binding_class", "image_binding_names"]

GROUP = "lollms_magics.image_bindings"

# Also declared in pyproject.toml; kept here so a never-installed checkout finds them.
BUILTIN: dict[str, str] = {
    "lollms": "lollms_magics.tti.lollms:LollmsImageBinding",
    "openai": "lollms_magics.tti.openai:OpenAIImageBinding",
    "a1111": "lollms_magics.tti.a1111:A1111Binding",
    "comfyui": "lollms_magics.tti.comfyui:ComfyUIBinding",
}

_registry: dict[str, str] | None = None


def _targets() -> dict[str, str]:
    global _registry
    if _registry is None:
        found = dict(BUILTIN)
        for ep in entry_points(group=GROUP):
            if ep.name in BUILTIN and ep.value != BUILTIN[ep.name]:
                warnings.warn(
                    f"image binding {ep.name!r} from {ep.value} is ignored: a built-in has that name",
                    LollmsMagicsWarning,
                    stacklevel=3,
                )
                continue
            found[ep.name] = ep.value
        _registry = found
    return _registry


def image_binding_names() -> list[str]:
    """The names of the installed image bindings, built-in ones first."""
    targets = _targets()
    return [*BUILTIN, *sorted(set(targets) - set(BUILTIN))]


def image_binding_class(name: str) -> type[ImageBinding]:
    """Import and return the class of image binding ``name``."""
    target = _targets().get(name)
    if target is None:
        raise UnknownBindingError(
            f"no image binding named {name!r}; the image bindings are: {', '.join(image_binding_names())}"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"image binding {name!r} needs {exc.name or module_name}: install it"
        ) from exc
    cls: type[ImageBinding] = getattr(module, attr)
    return cls


def get_image_binding(
    name: str,
    host: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    **config: Any,
) -> ImageBinding:
    """Create the image binding ``name`` (``"lollms"``, ``"openai"``, ``"a1111"``, ``"comfyui"``...).

    ``config`` holds binding settings such as ``read_timeout`` (seconds a
    picture may take), ``client_id`` (lollms-webui) or ``workflow`` (ComfyUI).
    """
    return image_binding_class(name)(host=host, model=model, api_key=api_key, **config)
