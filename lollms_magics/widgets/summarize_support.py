"""What the summarize panel runs on: Stop-cuttable bindings, the kept upload, the status line's pace.

* :class:`StoppableBinding`: every answer in flight is cut by Stop, and a
  cut answer raises ``Cancelled`` (never kept as notes).
* :class:`KeptFile`: an uploaded file is kept in the kernel's memory (not in
  the widget, whose state a saved notebook may carry) until Clear, so that
  Summarize after a Stop resumes without a new upload. It is written to a
  temporary folder only while a run reads it; the folder is removed when the
  run ends, and at interpreter exit if a run was still reading it.
* :class:`Pace` and :func:`progress_line`: the one status line while a
  summary runs, with a time left only once a chunk has taken time.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import DocumentError
from ..summaries.calls import Cancelled
from ..summaries.progress import ProgressEvent

__all__ = ["KeptFile", "Pace", "StoppableBinding", "progress_line"]


class StoppableBinding:
    """A binding whose answers a Stop button can cut: every stream in flight is cancelled at once."""

    def __init__(self, binding: Any, stop: threading.Event) -> None:
        self._binding = binding
        self._stop = stop
        self._live: set[Any] = set()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # model, host, tokenize, context_size...: the binding's own
        return getattr(self._binding, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        if self._stop.is_set():
            raise Cancelled()
        response = self._binding.generate(*args, **kwargs)
        with self._lock:
            self._live.add(response)
        if self._stop.is_set():  # Stop came while the request was being made: cancel_all missed it
            response.cancel()
        return _Cuttable(response, self)

    def cancel_all(self) -> None:
        with self._lock:
            live = list(self._live)
        for response in live:
            response.cancel()


class _Cuttable:
    """A response that raises ``Cancelled`` when stopped, so a cut answer is never kept as whole."""

    def __init__(self, response: Any, owner: StoppableBinding) -> None:
        self._response = response
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)

    def __iter__(self) -> Any:
        try:
            yield from self._response
        finally:
            with self._owner._lock:
                self._owner._live.discard(self._response)
        if self._owner._stop.is_set():
            raise Cancelled()


# Folders holding an upload while a run reads it; removed at exit if a run never ended
# (the panel's worker is a daemon thread: its ``finally`` does not run when the kernel stops).
_LIVE: set[str] = set()
_LIVE_LOCK = threading.Lock()


def _remove_live() -> None:
    with _LIVE_LOCK:
        folders = list(_LIVE)
        _LIVE.clear()
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


atexit.register(_remove_live)


class KeptFile:
    """An uploaded file, kept in memory for the session (its name and bytes)."""

    def __init__(self, name: str, content: bytes) -> None:
        self.name = Path(name).name.strip(". ") or "upload.txt"
        self.content = content

    @property
    def label(self) -> str:
        """The file as the panel names it: ``minutes.md (12.3 KB)``."""
        size = len(self.content)
        shown = f"{size} bytes" if size < 1024 else (
            f"{size / 1024:.1f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB")
        return f"{self.name} ({shown})"

    @contextmanager
    def on_disk(self) -> Iterator[Path]:
        """The file written to a temporary folder for as long as the block runs (then removed).

        The readers (docling for PDF, DOCX...) take a path and tell the format by its suffix.
        """
        folder = tempfile.mkdtemp(prefix="lollms-summarize-")
        with _LIVE_LOCK:
            _LIVE.add(folder)
        try:
            path = Path(folder) / self.name
            try:
                path.write_bytes(self.content)
            except OSError as exc:
                raise DocumentError(
                    f"cannot keep the uploaded {self.name} for reading: {exc.strerror}") from None
            yield path
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            with _LIVE_LOCK:
                _LIVE.discard(folder)


_INSTANT = 0.05  # a step done faster than this reused an earlier run's answer: it says nothing of the pace


class Pace:
    """How long the chunks still to read will take, from the chunks this run has read.

    Only steps that took time count: answers reused from an earlier run
    come back at once, and would make the server look many times faster
    than it is. The first chunk also carries the start-up (a first
    connection, a model being loaded): once others have finished it is
    left out. Nothing is estimated before a chunk has finished.
    """

    def __init__(self) -> None:
        self._last: float | None = None
        self._gaps: list[float] = []

    def see(self, event: ProgressEvent) -> None:
        """Take ``event`` into account (``start`` and ``chunk`` events time the chunks)."""
        if event.phase == "start" or self._last is None:
            self._last = event.elapsed
            if event.phase == "start":
                return
        if event.phase != "chunk":
            return
        gap, self._last = event.elapsed - self._last, event.elapsed
        if gap >= _INSTANT:
            self._gaps.append(gap)

    def left(self, remaining: int) -> float | None:
        """Seconds the ``remaining`` chunks should take; None until a chunk has taken time."""
        if not self._gaps or remaining <= 0:
            return None
        recent = (self._gaps[1:] if len(self._gaps) > 1 else self._gaps)[-8:]
        return sum(recent) / len(recent) * remaining


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds + 0.5), 60)
    return f"{minutes}:{rest:02d}"


def progress_line(event: ProgressEvent, pace: Pace) -> str:
    """The status line for ``event`` while the summary runs (``pace`` has seen it)."""
    if event.phase in ("start", "chunk"):
        parts = [f"chunk {event.chunk}/{event.chunks} read" if event.chunk else
                 f"reading {event.chunks} chunk(s)"]
        if event.tokens_per_second is not None:
            parts.append(f"{event.tokens_per_second:.0f} tok/s")
        left = pace.left(event.chunks - event.chunk)
        if left is not None:
            parts.append(f"about {_clock(left)} left for the other chunks")
        return " · ".join(parts)
    if event.phase == "combine":
        return f"combining the notes (step {event.done}/{event.total})"
    if event.phase == "final":
        return "writing the summary"
    return event.message
