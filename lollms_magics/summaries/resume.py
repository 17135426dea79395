"""Finished steps are remembered, so a re-run after an interrupt resumes.

Each model call made for a chunk (its notes, a merge) is stored under a hash
of everything that decides its answer: the model, the messages and the
generation options. A re-run with the same source and options builds the
same prompts for the steps already finished, finds their answers here and
sends only the rest. Only complete answers are stored; the final summary is
not (a re-run writes it again, streamed).

The store lives in memory for the whole kernel (bounded: the oldest entries
go first), and optionally on disk: ``resume="path/to/folder"``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

__all__ = ["CallCache", "Memory", "call_key", "shared_memory"]

_MAX_ENTRIES = 4096  # about 4,000 chunks: a few 500-page documents


def call_key(model: str, messages: list[dict[str, str]], options: dict[str, Any]) -> str:
    """A hash naming one call's answer."""
    payload = json.dumps([model, messages, options], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class _Memory:
    """A bounded, thread-safe mapping of keys to answers, oldest dropped first."""

    def __init__(self, limit: int = _MAX_ENTRIES) -> None:
        self.limit = limit
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_shared = _Memory()
Memory = _Memory  # a store of its own, for calls kept apart from the summaries' (mapped items)


def shared_memory() -> _Memory:
    """The kernel-wide store (tests clear it)."""
    return _shared


class CallCache:
    """Where finished calls are looked up and stored for one summary.

    ``resume``: True (memory), False (nothing stored, nothing reused), or a
    folder (memory, and one JSON file per call there, which survives the
    kernel). ``memory``: the kernel-wide store to use (default: the summaries').
    """

    def __init__(self, resume: bool | str | os.PathLike[str], memory: _Memory | None = None) -> None:
        self.memory = memory if memory is not None else _shared
        self.enabled = resume is not False
        self.folder = Path(resume).expanduser() if isinstance(resume, (str, os.PathLike)) else None
        self.hits = 0

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        value = self.memory.get(key)
        if value is None and self.folder is not None:
            value = self._read(key)
            if value is not None:
                self.memory.put(key, value)
        if value is not None:
            self.hits += 1
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.memory.put(key, value)
        if self.folder is not None:
            _write(self.folder / f"{key}.json", json.dumps(value, ensure_ascii=False))

    def _read(self, key: str) -> dict[str, Any] | None:
        assert self.folder is not None
        try:
            value = json.loads((self.folder / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None


def _write(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all, even when several threads write the same one.

    Each writer has a temporary file of its own (two identical calls, made at once,
    store the same key), which then replaces ``path`` in one step: a reader sees the
    old answer or the new one, never half of one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:16]}-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
