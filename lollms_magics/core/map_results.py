"""What a mapped prompt gives back: :class:`MapResult`, and :class:`MapProgress` while it runs.

Split from :mod:`~lollms_magics.core.mapping`, which runs the requests; this
module holds the results, their shapes (through
:mod:`~lollms_magics.core.map_items`) and the progress events.
"""

from __future__ import annotations

import reprlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .map_items import Items, aligned, pandas_kind

__all__ = ["MapProgress", "MapResult", "ProgressTracker"]

_EMIT_EVERY = 0.2  # seconds between two progress events while items finish
_SHORT = reprlib.Repr()  # a MapResult shows the first results of a long list, not all of them
_SHORT.maxlist = _SHORT.maxdict = 12
_SHORT.maxstring = _SHORT.maxother = 120


@dataclass(frozen=True)
class MapProgress:
    """Where a mapped prompt stands; ``phase`` is ``"start"``, ``"item"``, ``"done"`` or ``"stopped"``.

    ``rate`` counts the items answered per second in this run (not those
    reused from an earlier one); ``seconds_left`` is None until one is answered.
    """

    phase: str
    done: int
    failed: int
    total: int
    cached: int
    rate: float | None
    seconds_left: float | None
    elapsed: float

    def line(self) -> str:
        """One line: ``37/200 done  1 failed  12.4 items/s  0:13 left``."""
        parts = [f"{self.done}/{self.total} done"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.cached:
            parts.append(f"{self.cached} from an earlier run")
        if self.rate is not None:
            parts.append(f"{self.rate:.1f} items/s")
        if self.phase in ("done", "stopped"):
            parts.append(f"{'stopped after' if self.phase == 'stopped' else 'in'} {self.elapsed:.1f} s")
        elif self.seconds_left is not None:
            minutes, seconds = divmod(int(self.seconds_left + 0.5), 60)
            parts.append(f"{minutes}:{seconds:02d} left")
        return "  ".join(parts)


@dataclass(repr=False)
class MapResult:
    """The answers of a mapped prompt, in the items' order.

    Attributes
    ----------
    results:
        One per item, in order: the answer's text (stripped), or with a schema
        its data; None for an item that failed or was not done.
    labels:
        Each item's label: its position, its dict key, its pandas index label, its file path.
    error_list:
        One per item: its error message, or None.
    done, cached, calls:
        Items answered (in this run or reused from an earlier one), items
        reused, and requests sent.
    wall_time:
        Seconds the whole map took.
    stopped:
        True when an interrupt (or a Stop) ended it early.
    error:
        Why the run ended early (an interrupt, every host failing, the first
        failure with ``fail_fast``), else None.
    fields:
        The schema's top-level fields (the output's columns), if any.
    notes:
        Remarks on the filling (a value cut to the fill limit...).
    """

    results: list[Any]
    labels: list[Any]
    error_list: list[str | None]
    items: Items = field(repr=False)
    fields: list[str] = field(default_factory=list)
    done: int = 0
    cached: int = 0
    calls: int = 0
    wall_time: float = 0.0
    stopped: bool = False
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> dict[Any, str]:
        """The failed items' errors, by label (position, key, index label or path)."""
        return {self.labels[i]: e for i, e in enumerate(self.error_list) if e is not None}

    @property
    def failed(self) -> int:
        """How many items failed."""
        return sum(e is not None for e in self.error_list)

    @property
    def complete(self) -> bool:
        """True when every item has its answer."""
        return self.done == len(self.results)

    def output(self) -> Any:
        """The results in the items' shape: a list, a dict, or pandas aligned with the items' index.

        A DataFrame gives a DataFrame with a ``result`` column (with a schema,
        one column per field) and an ``error`` column; a Series gives a Series
        (a DataFrame with a schema); a dict or a glob of files, a dict.
        """
        return aligned(self.items, self.results, self.error_list, self.fields)

    def summary(self) -> str:
        """One line: how many were done, failed, reused, and how fast."""
        total = len(self.results)
        parts = [f"{self.done} of {total} done"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.cached:
            parts.append(f"{self.cached} from an earlier run")
        answered = self.done - self.cached
        rate = f" ({answered / self.wall_time:.1f} items/s)" if answered and self.wall_time > 0 else ""
        parts.append(f"{self.calls} requests in {self.wall_time:.1f} s{rate}")
        return ", ".join(parts)

    def __len__(self) -> int:
        return len(self.results)

    def __repr__(self) -> str:
        head = f"MapResult: {self.done} of {len(self)} done"
        if self.failed:
            head += f", {self.failed} failed"
        shown = self.output()
        return f"{head}\n{shown!r}" if pandas_kind(shown) else f"{head}\n{_SHORT.repr(shown)}"

    def _repr_html_(self) -> str | None:
        shown = self.output()
        html = getattr(shown, "_repr_html_", None)
        return html() if callable(html) else None


class ProgressTracker:
    """Counts finished items and sends throttled :class:`MapProgress` events (thread-safe)."""

    def __init__(self, callback: Callable[[MapProgress], None] | None, total: int, cached: int) -> None:
        self.callback = callback
        self.total, self.cached = total, cached
        self.done, self.failed = cached, 0
        self.started = time.perf_counter()
        self._shown = 0.0
        self._lock = threading.Lock()

    def step(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.done += 1
            else:
                self.failed += 1
            now = time.perf_counter()
            if now - self._shown < _EMIT_EVERY and self.done + self.failed < self.total:
                return
            self._shown = now
        self.emit("item")

    def emit(self, phase: str) -> None:
        if self.callback is None:
            return
        with self._lock:
            elapsed = time.perf_counter() - self.started
            answered = self.done - self.cached + self.failed
            rate = answered / elapsed if answered and elapsed > 0 else None
            left = (self.total - self.done - self.failed) / rate if rate else None
            event = MapProgress(phase, self.done, self.failed, self.total, self.cached, rate, left, elapsed)
        self.callback(event)
