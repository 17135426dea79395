"""Showing an answer while it streams, then in its final form.

In a notebook the answer streams into one display, updated by id at most
every ``interval`` seconds, so the work done is bounded by time, not by the
number of pieces. When the answer is complete that same display is replaced
by one rich output (Markdown by default) carrying provenance metadata, which
is what the saved ``.ipynb``, nbviewer and GitHub show.

Where there is no rich frontend (terminal IPython) the pieces go straight to
standard output instead.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["FORMATS", "LiveAnswer", "bundle", "first_code_block", "has_rich_display"]

_CODE_BLOCK = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CURSOR = " ▍"


def first_code_block(text: str) -> str:
    """The first fenced code block of ``text``, or the whole text when it has none."""
    match = _CODE_BLOCK.search(text)
    return (match.group(1) if match else text).strip("\n")


def _json(text: str) -> dict[str, Any]:
    body = text.strip()
    if body.startswith("```"):  # models like to fence their JSON
        body = first_code_block(body)
    try:
        return {"application/json": json.loads(body), "text/plain": text}
    except ValueError:
        return _markdown(text)


def _markdown(text: str) -> dict[str, Any]:
    return {"text/markdown": text, "text/plain": text}


def _text(text: str) -> dict[str, Any]:
    return {"text/plain": text}


def _html(text: str) -> dict[str, Any]:
    return {"text/html": text, "text/plain": text}


# Output format -> the mime bundle of the final display. ``code`` shows the
# answer as Markdown; its code block also goes into a new cell.
_BUNDLES: dict[str, Callable[[str], dict[str, Any]]] = {
    "markdown": _markdown,
    "text": _text,
    "code": _markdown,
    "html": _html,
    "json": _json,
}
FORMATS = tuple(_BUNDLES)


def bundle(text: str, fmt: str) -> dict[str, Any]:
    """The mime bundle that shows ``text`` in format ``fmt``."""
    return _BUNDLES[fmt](text)


def has_rich_display(shell: Any) -> bool:
    """True when displays reach a rich frontend (a kernel, or a capture), not a terminal.

    Terminal IPython keeps the base ``DisplayPublisher``, which only prints
    plain text; kernels, Colab and ``capture_output`` replace it.
    """
    from IPython.core.displaypub import DisplayPublisher

    publisher = getattr(shell, "display_pub", None)
    return publisher is not None and type(publisher) is not DisplayPublisher


class LiveAnswer:
    """The output of one answer: live while it streams, final once it ends.

    Parameters
    ----------
    rich:
        Use an updatable display (notebooks); else write to standard output.
    live:
        Show the text while it arrives (``--no-stream`` turns this off).
    interval:
        Least number of seconds between two updates of the live display.
    """

    def __init__(self, *, rich: bool, live: bool, interval: float, fmt: str) -> None:
        self.rich = rich
        self.live = live
        self.interval = interval
        self.fmt = fmt
        self.updates = 0
        self._pieces: list[str] = []
        self._handle: Any = None

    @property
    def text(self) -> str:
        """Everything received so far."""
        return "".join(self._pieces)

    def consume(self, pieces: Iterable[str]) -> None:
        """Read ``pieces`` to the end, showing them as they come.

        Whatever stops the loop (an error, ``KeyboardInterrupt``) propagates;
        the text received until then stays in :attr:`text`.
        """
        append = self._pieces.append
        clock = time.monotonic
        if not self.rich:
            write = sys.stdout.write
            for piece in pieces:
                append(piece)
                write(piece)
                sys.stdout.flush()
            return
        if not self.live:
            for piece in pieces:
                append(piece)
            return
        view = _markdown if self.fmt in ("markdown", "code") else _text
        interval = self.interval
        next_at = 0.0  # the first piece is shown at once
        for piece in pieces:
            append(piece)
            now = clock()
            if now >= next_at:
                self._show(view(self.text + _CURSOR), {})
                next_at = now + interval

    def finish(self, metadata: dict[str, Any]) -> None:
        """Replace the live view by the final output, tagged with ``metadata``."""
        if not self.rich:
            if self._pieces and not self._pieces[-1].endswith("\n"):
                sys.stdout.write("\n")
            sys.stdout.flush()
            return
        self._show(bundle(self.text, self.fmt), {"lollms_magics": metadata})

    def _show(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        from IPython.display import display

        self.updates += 1
        if self._handle is None:
            self._handle = display(  # type: ignore[no-untyped-call]
                data, raw=True, metadata=metadata, display_id=True
            )
        else:
            self._handle.update(data, raw=True, metadata=metadata)
