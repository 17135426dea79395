"""Showing pictures under a cell: progress while the server works, then the pictures.

While a job runs, one display shows a progress bar where the server reports
progress (A1111), or a waiting indicator (an indeterminate bar and the
seconds spent) where it does not; it is updated at most every
``interval`` seconds. When the pictures come, that same display is replaced
by them, so the saved notebook keeps one output per cell: a single picture
as its own ``image/png`` / ``image/jpeg`` output, several side by side (an
HTML row, with the first picture as the plain-image fallback). Either way
the output's metadata (key ``lollms_magics``) records how they were made.

``--save`` writes the files without ever replacing one silently: a name
that exists gets ``-1``, ``-2``... and the line printed says so.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .plain import say

if TYPE_CHECKING:
    from ..tti.base import ImageResult

__all__ = ["ImageProgress", "image_bundle", "save_images", "show_images"]

_PLAIN_MIMES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif"}
_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp"}
_PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".gif": "GIF", ".bmp": "BMP"}


class ImageProgress:
    """The live display of a running job; call it with a fraction, or None when unknown."""

    def __init__(self, *, rich: bool, label: str, interval: float = 0.25) -> None:
        self.rich = rich
        self.label = label
        self.interval = interval
        self.handle: Any = None
        self.updates = 0
        self.fractions: list[float] = []  # what the server reported, for the tests and the metadata
        self._started = time.monotonic()
        self._next = 0.0

    def __call__(self, fraction: float | None) -> None:
        if fraction is not None:
            self.fractions.append(fraction)
        now = time.monotonic()
        if not self.rich:  # a terminal: one line, so that a long job is not mistaken for a hang
            if not self.updates:
                say(f"{self.label}: working…", file=sys.stderr)
                self.updates = 1
            return
        if now < self._next and fraction != 1.0:
            return
        self._next = now + self.interval
        view = self._view(fraction, now - self._started)
        if self.handle is None:
            from IPython.display import display

            self.handle = display(view, raw=True, display_id=True)  # type: ignore[no-untyped-call]
        else:
            self.handle.update(view, raw=True)
        self.updates += 1

    def _view(self, fraction: float | None, elapsed: float) -> dict[str, Any]:
        if fraction is None:
            bar = '<progress style="width:16em"></progress>'  # no value: the browser's waiting bar
            text = f"{self.label}: working… {elapsed:.0f} s"
        else:
            bar = f'<progress style="width:16em" value="{fraction:.3f}" max="1"></progress>'
            text = f"{self.label}: {fraction * 100:.0f}% ({elapsed:.0f} s)"
        return {"text/html": f"<div>{bar} <code>{html.escape(text)}</code></div>", "text/plain": text}


def describe(result: ImageResult) -> str:
    """One line about the pictures (the plain-text form of the output)."""
    sizes = ", ".join(f"{w}x{h}" for w, h in result.sizes)
    seed = f", seed {result.seed}" if result.seed is not None else ""
    count = f"{len(result.images)} image{'s' if len(result.images) > 1 else ''}"
    return f"{result.binding}: {count} {sizes}{seed} — {result.prompt[:80]}"


def image_bundle(result: ImageResult, metadata: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The mime bundle and output metadata that show ``result``'s pictures."""
    data: dict[str, Any] = {"text/plain": describe(result)}
    meta: dict[str, Any] = {"lollms_magics": metadata}
    first_mime = _PLAIN_MIMES.get(result.formats[0])
    if first_mime:
        data[first_mime] = base64.b64encode(result.images[0]).decode("ascii")
        width, height = result.sizes[0]
        meta[first_mime] = {"width": width, "height": height}
    if len(result.images) > 1 or first_mime is None:
        cells = []
        for img, fmt, (w, h) in zip(result.images, result.formats, result.sizes, strict=True):
            src = f"data:image/{fmt.lower()};base64,{base64.b64encode(img).decode('ascii')}"
            cells.append(
                f'<img src="{src}" width="{w}" height="{h}" alt="{html.escape(result.prompt[:120])}" '
                'style="max-width:100%;height:auto">'
            )
        data["text/html"] = '<div style="display:flex;gap:8px;flex-wrap:wrap">' + "".join(cells) + "</div>"
    return data, meta


def show_images(result: ImageResult, metadata: dict[str, Any], progress: ImageProgress | None) -> None:
    """Show the pictures, in place of the progress display when there was one."""
    data, meta = image_bundle(result, metadata)
    if progress is not None and progress.handle is not None:
        progress.handle.update(data, metadata=meta, raw=True)
        return
    from IPython.display import display

    display(data, metadata=meta, raw=True)  # type: ignore[no-untyped-call]


def _slug(text: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return words[:40].rstrip("-") or "image"


def _free(path: Path) -> Path:
    """``path``, or ``name-1.ext``, ``name-2.ext``... when it exists: never overwrite."""
    if not path.exists():
        return path
    for number in range(1, 10_000):
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"too many files named like {path}")


def _targets(result: ImageResult, where: str) -> list[Path]:
    target = Path(os.path.expanduser(where))
    count = len(result.images)
    if target.is_dir() or where.endswith(("/", os.sep)) or not target.suffix:
        target.mkdir(parents=True, exist_ok=True)
        seed = f"-{result.seed}" if result.seed is not None else ""
        return [
            target / f"{_slug(result.prompt)}{seed}-{i + 1}{_SUFFIXES.get(fmt, '.img')}"
            for i, fmt in enumerate(result.formats)
        ]
    target.parent.mkdir(parents=True, exist_ok=True)
    if count == 1:
        return [target]
    return [target.with_name(f"{target.stem}-{i + 1}{target.suffix}") for i in range(count)]


def _encode(data: bytes, fmt: str, out_fmt: str | None, metadata: dict[str, Any] | None) -> bytes:
    """``data`` as ``out_fmt`` (when another format was asked); a PNG carries ``metadata`` as text."""
    target = out_fmt or fmt
    if target == fmt and not (target == "PNG" and metadata):
        return data
    from PIL import Image, PngImagePlugin

    buffer = io.BytesIO()
    with Image.open(io.BytesIO(data)) as img:
        if target == "PNG":
            info = PngImagePlugin.PngInfo()
            if metadata:
                info.add_text("lollms_magics", json.dumps(metadata, ensure_ascii=False))
            img.save(buffer, format="PNG", pnginfo=info)
        else:
            (img.convert("RGB") if target == "JPEG" else img).save(buffer, format=target)
    return buffer.getvalue()


def save_images(result: ImageResult, where: str, metadata: dict[str, Any] | None = None) -> list[str]:
    """Write the pictures to ``where`` (a file, or a directory); lines saying where each went.

    A suffix that names another format than the server's (``owl.png`` for a
    JPEG) converts the picture; a PNG keeps ``metadata`` (how it was made)
    in a ``lollms_magics`` text chunk; an existing file is never replaced.
    """
    lines = []
    for data, fmt, wanted in zip(result.images, result.formats, _targets(result, where), strict=True):
        path = _free(wanted)
        encoded = _encode(data, fmt, _PIL_FORMATS.get(path.suffix.lower()), metadata)
        with open(path, "xb") as f:  # "x": fails rather than replace a file made meanwhile
            f.write(encoded)
        note = f" ({wanted.name} exists, not replaced)" if path != wanted else ""
        lines.append(f"lollms: saved {path}{note}")
    return lines
