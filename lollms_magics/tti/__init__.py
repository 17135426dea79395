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

from typing import TYPE_CHECKING, Any

from ..plugins import Registry

if TYPE_CHECKING:
    from .base import ImageBinding

__all__ = ["BUILTIN", "GROUP", "REGISTRY", "get_image_binding", "image_binding_class", "image_binding_names"]

GROUP = "lollms_magics.image_bindings"

BUILTIN: dict[str, str] = {
    "lollms": "lollms_magics.tti.lollms:LollmsImageBinding",
    "openai": "lollms_magics.tti.openai:OpenAIImageBinding",
    "a1111": "lollms_magics.tti.a1111:A1111Binding",
    "comfyui": "lollms_magics.tti.comfyui:ComfyUIBinding",
}

REGISTRY = Registry(GROUP, BUILTIN, "image binding")


def image_binding_names() -> list[str]:
    """The names of the installed image bindings, built-in ones first."""
    return REGISTRY.names()


def image_binding_class(name: str) -> type[ImageBinding]:
    """Import and return the class of image binding ``name``."""
    cls: type[ImageBinding] = REGISTRY.load(name)
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
