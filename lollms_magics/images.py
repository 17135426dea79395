"""Turn the images users hold into what the protocols send.

An image may be a path, raw bytes, a PIL image or a ``data:`` URL. Each is
read once into an :class:`EncodedImage` (MIME type plus base64 text); the
bindings then send the base64 alone (Ollama, legacy LoLLMs) or as a data URL
(OpenAI-compatible servers). PIL is imported only when a PIL image is given.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Any

from .errors import InvalidImageError

__all__ = ["EncodedImage", "ImageInput", "encode_image", "sniff_mime"]

ImageInput = Any  # str | os.PathLike[str] | bytes | PIL.Image.Image

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


@dataclass(frozen=True)
class EncodedImage:
    """An image ready for the wire: its MIME type and its base64 text."""

    mime: str
    b64: str

    @property
    def data_url(self) -> str:
        """The image as a ``data:`` URL, the form OpenAI-compatible servers take."""
        return f"data:{self.mime};base64,{self.b64}"

    def __repr__(self) -> str:  # the payload can be megabytes; keep reprs short
        return f"EncodedImage({self.mime}, {len(self.b64)} base64 chars)"


def sniff_mime(data: bytes) -> str | None:
    """Return the MIME type that ``data``'s first bytes announce, or None."""
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _from_bytes(data: bytes, what: str) -> EncodedImage:
    mime = sniff_mime(data)
    if mime is None:
        raise InvalidImageError(f"{what} is not a PNG, JPEG, GIF, WebP or BMP image")
    return EncodedImage(mime, base64.b64encode(data).decode("ascii"))


def _from_data_url(url: str) -> EncodedImage:
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        raise InvalidImageError("a data URL image must be base64: data:image/png;base64,...")
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error:
        raise InvalidImageError("the data URL holds invalid base64") from None
    return _from_bytes(data, "the data URL")


def _is_pil_image(obj: object) -> bool:
    # Checked by module name so that PIL is never imported just to ask.
    return any(cls.__module__.startswith("PIL.") for cls in type(obj).__mro__)


def encode_image(image: ImageInput) -> EncodedImage:
    """Read ``image`` (path, bytes, PIL image or data URL) into an :class:`EncodedImage`."""
    if isinstance(image, EncodedImage):
        return image
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(image), "the image bytes")
    if isinstance(image, str) and image.startswith("data:"):
        return _from_data_url(image)
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise InvalidImageError(f"cannot read image {path}: {exc.strerror}") from None
        return _from_bytes(data, f"file {path}")
    if _is_pil_image(image):
        import io

        buffer = io.BytesIO()
        # PNG keeps RGB(A), L, P... without loss; other modes (CMYK, YCbCr, F...)
        # are converted first.
        try:
            image.save(buffer, format="PNG")
        except (OSError, ValueError):
            buffer = io.BytesIO()
            image.convert("RGBA" if "A" in image.getbands() else "RGB").save(buffer, format="PNG")
        return EncodedImage("image/png", base64.b64encode(buffer.getvalue()).decode("ascii"))
    raise InvalidImageError(
        f"an image must be a path, bytes, a PIL image or a data URL, not {type(image).__name__}"
    )
