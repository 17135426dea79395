"""Real image bytes for the image loopback servers, made with Pillow.

Every picture is a flat colour derived from a seed, with a contrasting band
across its top so a wrong crop or a swapped width/height shows. Tests decode
what a client received with Pillow and compare its size and format with what
they asked for; they never compare bytes produced the same way.
"""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw

__all__ = ["b64", "colour_for", "grid", "make_image", "make_jpeg", "make_png"]


def colour_for(seed: int) -> tuple[int, int, int]:
    """A deterministic RGB colour for *seed* (different seeds, different colours)."""
    return ((seed * 97 + 40) % 256, (seed * 57 + 90) % 256, (seed * 31 + 160) % 256)


def _picture(width: int, height: int, seed: int) -> Image.Image:
    img = Image.new("RGB", (width, height), colour_for(seed))
    band = max(1, height // 8)
    ImageDraw.Draw(img).rectangle((0, 0, width - 1, band - 1), fill=(255, 255, 255))
    return img


def make_image(width: int, height: int, fmt: str = "PNG", seed: int = 0, quality: int = 80) -> bytes:
    """Encoded image of exactly ``width`` x ``height`` pixels in *fmt* (``PNG``, ``JPEG``, ``WEBP``)."""
    buf = io.BytesIO()
    img = _picture(width, height, seed)
    if fmt.upper() in ("JPEG", "JPG", "WEBP"):
        img.save(buf, format="JPEG" if fmt.upper() in ("JPEG", "JPG") else "WEBP", quality=quality)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def make_png(width: int, height: int, seed: int = 0) -> bytes:
    """PNG bytes of the requested size."""
    return make_image(width, height, "PNG", seed)


def make_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """JPEG bytes of the requested size."""
    return make_image(width, height, "JPEG", seed)


def grid(width: int, height: int, count: int, fmt: str = "PNG") -> bytes:
    """The contact sheet A1111 puts before a batch: images side by side in rows."""
    cols = min(count, 4)
    rows = (count + cols - 1) // cols
    sheet = Image.new("RGB", (cols * width, rows * height), (0, 0, 0))
    for i in range(count):
        sheet.paste(_picture(width, height, i), ((i % cols) * width, (i // cols) * height))
    buf = io.BytesIO()
    sheet.save(buf, format="JPEG" if fmt.upper() in ("JPEG", "JPG") else "PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    """Base64 text without a ``data:`` prefix, as the servers send it."""
    return base64.b64encode(data).decode("ascii")
