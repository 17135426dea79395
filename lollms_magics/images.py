"""Turn the images users hold into what the protocols send.

An image may be a path, raw bytes, a PIL image or a ``data:`` URL. Each is
read once into an :class:`EncodedImage` (MIME type plus base64 text); the
bindings then send the base64 alone (Ollama, legacy LoLLMs) or as a data URL
(OpenAI-compatible servers). PIL is imported only when a PIL image is given.

An image is at most :data:`MAX_IMAGE_BYTES`: a file is measured before it is
read and read no further than the limit (``/dev/zero`` or a pipe announce no
size), so a wrong path fails at once with one line instead of filling memory.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Any

from .errors import InvalidImageError

__all__ = ["MAX_IMAGE_BYTES", "EncodedImage", "ImageInput", "encode_image", "sniff_mime"]

ImageInput = Any  # str | os.PathLike[str] | bytes | PIL.Image.Image

# The largest image read or sent, in bytes. Servers refuse far less (OpenAI: 20 MB,
# llama.cpp and Ollama slow to a crawl long before); raise it here if one of yours takes more.
MAX_IMAGE_BYTES = 32 * 2**20
_SETTING = "lollms_magics.images.MAX_IMAGE_BYTES"

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


def _too_large(what: str) -> InvalidImageError:
    limit = MAX_IMAGE_BYTES
    size = f"{limit // 2**20} MB" if limit % 2**20 == 0 else f"{limit:,} bytes"
    return InvalidImageError(f"{what} is larger than {size}, the limit for an image ({_SETTING})")


def _from_bytes(data: bytes, what: str) -> EncodedImage:
    if len(data) > MAX_IMAGE_BYTES:
        raise _too_large(what)
    mime = sniff_mime(data)
    if mime is None:
        raise InvalidImageError(f"{what} is not a PNG, JPEG, GIF, WebP or BMP image")
    return EncodedImage(mime, base64.b64encode(data).decode("ascii"))


def _from_data_url(url: str) -> EncodedImage:
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        raise InvalidImageError("a data URL image must be base64: data:image/png;base64,...")
    if len(payload) > (MAX_IMAGE_BYTES + 2) // 3 * 4 + 4:  # base64 takes 4 characters per 3 bytes
        raise _too_large("the data URL")
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error:
        raise InvalidImageError("the data URL holds invalid base64") from None
    return _from_bytes(data, "the data URL")


def _is_pil_image(obj: object) -> bool:
    # Checked by module name so that PIL is never imported just to ask.
    return any(cls.__module__.startswith("PIL.") for cls in type(obj).__mro__)


def _read_file(path: str) -> bytes:
    """The bytes of the file at ``path``, refused by its size before reading when it has one."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > MAX_IMAGE_BYTES:
                raise _too_large(f"file {path}")
            # Devices and pipes report no size: read one byte past the limit to tell.
            data = f.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        raise InvalidImageError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise _too_large(f"file {path}")
    return data


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
        return _from_bytes(_read_file(path), f"file {path}")
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
