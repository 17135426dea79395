"""Progress reports: a small event after each step, and a text bar for terminals.

``summarize(..., progress=callback)`` calls ``callback(event)`` with a
:class:`ProgressEvent` when the work starts, after each chunk, at each
combining round and when the final summary starts and ends. The notebook
magic draws it as an ipywidgets bar; :class:`TextBar` draws it on a terminal.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

__all__ = ["ProgressCallback", "ProgressEvent", "TextBar", "Tracker"]


@dataclass(frozen=True)
class ProgressEvent:
    """Where a summary stands.

    Attributes
    ----------
    phase:
        ``"start"``, ``"chunk"`` (notes on chunks), ``"combine"`` (merging
        notes), ``"final"`` (writing the summary), ``"done"``, or
        ``"notice"`` (``message`` says something about the input).
    done, total:
        Steps finished and steps planned (chunks, then combining and final
        calls); ``total`` may grow when notes need more merging rounds.
    chunk, chunks:
        The last chunk finished (1-based) and the number of chunks.
    tokens_per_second:
        Tokens the model wrote per second of wall time so far (None at first).
    seconds_left:
        Estimated time to the end (None until a step has finished).
    elapsed:
        Seconds since the start.
    message:
        A line to show (the notice, or what is happening).
    """

    phase: str
    done: int
    total: int
    chunk: int
    chunks: int
    tokens_per_second: float | None
    seconds_left: float | None
    elapsed: float
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


class Tracker:
    """Counts finished steps and tokens, and sends events to the callback (thread-safe)."""

    def __init__(self, callback: ProgressCallback | None, chunks: int, tokens: Callable[[], int]) -> None:
        self.callback = callback
        self.chunks = chunks
        self.total = chunks + 1  # the chunks, then the final call; combining rounds add to it
        self.done = 0
        self.chunk = 0
        self.tokens = tokens  # the completion tokens written so far
        self.started = time.perf_counter()
        self._lock = threading.Lock()

    def emit(self, phase: str, message: str = "") -> None:
        if self.callback is None:
            return
        with self._lock:
            elapsed = time.perf_counter() - self.started
            written = self.tokens()
            rate = written / elapsed if elapsed > 0 and written else None
            left = None
            if self.done:
                left = elapsed / self.done * max(0, self.total - self.done)
            event = ProgressEvent(
                phase, self.done, self.total, self.chunk, self.chunks, rate, left, elapsed, message
            )
        self.callback(event)

    def step(self, phase: str, chunk: int | None = None) -> None:
        """One step finished (a chunk's notes, a merge, the final summary)."""
        with self._lock:
            self.done += 1
            if chunk is not None:
                self.chunk = max(self.chunk, chunk)
        self.emit(phase)

    def add_steps(self, count: int) -> None:
        with self._lock:
            self.total += count


class TextBar:
    """A one-line progress bar for terminals: ``[#####.....] chunk 5/10  38 tok/s  1:20 left``."""

    def __init__(self, stream: TextIO | None = None, width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.width = width

    def __call__(self, event: ProgressEvent) -> None:
        if event.phase == "notice":
            self.stream.write(f"\r{event.message}\n")
            self.stream.flush()
            return
        self.stream.write("\r" + describe(event, self.width))
        if event.phase in ("final", "done", "stopped"):
            self.stream.write("\n")  # the summary streams below the bar
        self.stream.flush()


def describe(event: ProgressEvent, width: int = 24) -> str:
    """The event as one line with a bar of ``width`` cells."""
    share = event.done / event.total if event.total else 0.0
    filled = round(share * width)
    parts = [f"[{'#' * filled}{'.' * (width - filled)}]", f"chunk {event.chunk}/{event.chunks}"]
    if event.phase in ("combine", "final"):
        parts.append("combining" if event.phase == "combine" else "writing the summary")
    if event.tokens_per_second is not None:
        parts.append(f"{event.tokens_per_second:.0f} tok/s")
    if event.seconds_left is not None and event.phase != "done":
        minutes, seconds = divmod(int(event.seconds_left + 0.5), 60)
        parts.append(f"{minutes}:{seconds:02d} left")
    if event.phase == "done":
        parts.append(f"done in {event.elapsed:.1f} s")
    return "  ".join(parts)
