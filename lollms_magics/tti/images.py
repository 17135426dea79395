"""What an image job is made of: the checked request, the pictures made, and the check of each picture.

:class:`ImageRequest` is what :class:`~lollms_magics.tti.base.ImageBinding`
asks a server for, once checked; :class:`ImageResult` is what comes back,
with what a saved notebook keeps about it; :func:`check_image` reads every
reply with Pillow, so that a server answering something that is not a
picture fails with one line. Pillow is imported only when a picture is read.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProtocolError

__all__ = ["ImageRequest", "ImageResult", "Progress", "check_image"]

Progress = Callable[[float | None], None]  # a fraction in [0, 1], or None: working, amount unknown


@dataclass
class ImageRequest:
    """A checked request: what the binding is asked to make."""

    prompt: str
    negative_prompt: str
    width: int
    height: int
    seed: int | None
    steps: int | None
    cfg_scale: float | None
    n: int
    model: str | None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageResult:
    """The pictures a server made, and how they were made.

    ``images`` holds the encoded bytes as the server sent them (PNG, JPEG,
    WebP); ``formats`` and ``sizes`` are what Pillow read in them. ``seed`` is
    the seed the server reports it used (the requested one when it reports
    none); ``info`` holds what else the server said, without secrets.
    """

    images: list[bytes]
    prompt: str
    negative_prompt: str = ""
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    seeds: list[int] = field(default_factory=list)
    steps: int | None = None
    cfg_scale: float | None = None
    binding: str = ""
    model: str | None = None
    formats: list[str] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    ignored_options: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    duration: float = 0.0

    @property
    def mime_types(self) -> list[str]:
        """``image/png``... for each picture, as Pillow identified it."""
        return [f"image/{fmt.lower()}" for fmt in self.formats]

    def pil_images(self) -> list[Any]:
        """The pictures as PIL images (Pillow is imported here)."""
        from PIL import Image

        return [Image.open(io.BytesIO(data)) for data in self.images]

    def metadata(self) -> dict[str, Any]:
        """What a saved notebook keeps about these pictures (never a key or a client id)."""
        meta: dict[str, Any] = {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "size": [list(s) for s in self.sizes],
            "steps": self.steps,
            "cfg_scale": self.cfg_scale,
            "binding": self.binding,
            "model": self.model,
            "formats": self.formats,
        }
        if len(self.seeds) > 1:
            meta["seeds"] = self.seeds
        if self.ignored_options:
            meta["ignored_options"] = self.ignored_options
        if "fallback" in self.info:  # made by an image fallback: who, and what failed first
            meta["fallback"] = self.info["fallback"]
        meta["duration"] = round(self.duration, 3)
        return meta


def check_image(data: bytes, where: str, binding: str = "", url: str = "") -> tuple[str, tuple[int, int]]:
    """Pillow's format and size of ``data``; :class:`ProtocolError` when it is not a whole picture."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # decodes the whole picture: a truncated one fails here
            return str(img.format), (int(img.width), int(img.height))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        head = data[:16]
        raise ProtocolError(
            f"{where} answered something that is not an image ({len(data)} bytes starting {head!r}); "
            "is this the right kind of server?",
            binding=binding,
            url=url,
        ) from None
