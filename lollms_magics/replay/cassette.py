"""The replay file, and the two tapes that use it: a :class:`Recorder` and a :class:`Player`.

The file is JSON Lines, small enough to commit next to a notebook. Its first
line says what it is; every other line is one answer::

    {"lollms_magics_replay": 1, ...}
    {"key": {"method": "POST", "path": "/api/chat", "body": {...}}, "status": 200,
     "type": "application/x-ndjson", "ttfb": 0.021, "chunks": [[0.03, "{...}\\n"], ...]}
    {"key": {"method": "GET", "path": "/api/tags"}, "error": "ConnectError", "message": "..."}
    {"key": {"local": {"binding": "llamacpp", "model": "...", "messages": [...], "options": {...}}},
     "pieces": [[0.41, "Hello"], ...], "finish_reason": "stop", "prompt_tokens": 30, ...}

Each line is JSON by itself, whatever the answers hold: the characters
other tools take for line ends (U+2028, U+2029, U+0085) and lone surrogates
are written as ``\\u`` escapes, and lines are split at ``\\n`` only.

``chunks`` and ``pieces`` carry the seconds since the request was sent, so a
replay keeps the answer's pacing; ``b64`` holds a binary body (a picture).
An answer the reader stopped has ``"cut": true`` and ``end``, the seconds at
which it was stopped: it replays up to there and ends stopped, not finished. A
request asked several times gets several lines, served in order on replay
(the last one again once they are used up), so a notebook that asks the same
question twice replays both answers. ``recorded`` is when the answer was
recorded (UTC, to the second): a replayed output names it as its source.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import NotRecordedError
from .scrub import Scrubber, canonical, prompt_of
from .tools import changed_results

__all__ = ["FORMAT", "Cassette", "Player", "Recorder", "Tape"]

FORMAT = 1
_HEADER = {
    "lollms_magics_replay": FORMAT,
    "about": "answers recorded by lollms-magics; replay with %lollms replay FILE (no server, no key)",
}
# Left raw by json.dumps(ensure_ascii=False): line ends for str.splitlines() and
# many editors, and lone surrogates, which UTF-8 cannot write.
_UNSAFE = re.compile("[\u0085\u2028\u2029\ud800-\udfff]")


def _line(entry: dict[str, Any]) -> str:
    """``entry`` as one line of JSON, readable as UTF-8 by any JSON Lines reader."""
    text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
    # These characters can only stand inside JSON strings, where an escape means the same.
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class Cassette:
    """The answers of one replay file, by request key, in the order they were recorded."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._answers: dict[str, list[dict[str, Any]]] = {}
        self._served: dict[str, int] = {}
        # Where each answer read from the file stands in it (1 is the header): names it in outputs.
        self._lines: dict[int, int] = {}
        self._lock = threading.Lock()
        # One writer at a time: two threads saving at once could otherwise put an older
        # snapshot over a newer one, and an answer recorded in between would be lost.
        self._write_lock = threading.Lock()
        # Calls whose replayed result differs from the recorded one (see .tools), until read.
        self._changed: list[str] = []

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Cassette:
        """Read a replay file; ``FileNotFoundError`` or ``ValueError`` (one line) when it cannot be used."""
        cassette = cls(path)
        try:
            # "\n" only: splitlines() would also cut at U+2028, which older files hold raw.
            lines = cassette.path.read_text(encoding="utf-8").split("\n")
        except FileNotFoundError:
            raise FileNotFoundError(f"no replay file at {cassette.path}") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                raise ValueError(f"{cassette.path}, line {number}: not JSON; is it a replay file?") from None
            if number == 1 and isinstance(entry, dict) and "lollms_magics_replay" in entry:
                continue
            if not isinstance(entry, dict) or "key" not in entry:
                raise ValueError(f"{cassette.path}, line {number}: not an answer of a replay file")
            cassette._answers.setdefault(canonical(entry["key"]), []).append(entry)
            cassette._lines[id(entry)] = number
        return cassette

    def __len__(self) -> int:
        return sum(len(answers) for answers in self._answers.values())

    def line_of(self, entry: dict[str, Any]) -> int | None:
        """The line of the file ``entry`` was read from (None for one added since)."""
        return self._lines.get(id(entry))

    def entries(self) -> list[dict[str, Any]]:
        """Every answer, in the order of the file."""
        with self._lock:
            return [entry for answers in self._answers.values() for entry in answers]

    def keep_lines(self, lines: Iterable[int]) -> int:
        """Drop the answers read from lines not in ``lines`` (the file is not saved); how many went."""
        wanted = set(lines)
        dropped = 0
        with self._lock:
            for name in list(self._answers):
                kept = [e for e in self._answers[name] if self._lines.get(id(e)) in wanted]
                dropped += len(self._answers[name]) - len(kept)
                if kept:
                    self._answers[name] = kept
                else:
                    del self._answers[name]
        return dropped

    def take(self, key: Any) -> dict[str, Any] | None:
        """The next answer recorded for ``key`` (the last one once all were served), or None."""
        name = canonical(key)
        with self._lock:
            answers = self._answers.get(name)
            if not answers:
                return None
            index = self._served.get(name, 0)
            self._served[name] = index + 1
            entry = answers[min(index, len(answers) - 1)]
            self._changed.extend(changed_results(key, entry["key"]))
            return entry

    def changed_results(self) -> list[str]:
        """The calls whose result, in requests answered since last asked, differs from the recorded one."""
        with self._lock:
            changed, self._changed = self._changed, []
        return changed

    def put(self, entry: dict[str, Any], *, replace: bool) -> None:
        """Add an answer; ``replace`` drops the answers recorded for its key before."""
        name = canonical(entry["key"])
        with self._lock:
            if replace:
                self._answers.pop(name, None)  # re-recorded: it moves to the end
            self._answers.setdefault(name, []).append(entry)

    def save(self) -> None:
        """Write the file (atomically: a reader never sees half of it)."""
        with self._write_lock:
            with self._lock:
                lines = [json.dumps(_HEADER, ensure_ascii=False)]
                for answers in self._answers.values():
                    lines.extend(_line(a) for a in answers)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".replay-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write("\n".join(lines) + "\n")
                os.chmod(temporary, 0o644)  # mkstemp makes it private; the file is meant to be shared
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise


class Tape:
    """What a recorder and a player share: the file and the scrubbing of keys."""

    kind = ""

    def __init__(self, cassette: Cassette, redact: Callable[[str], str] | None = None) -> None:
        self.cassette = cassette
        self.redact = redact

    @property
    def path(self) -> Path:
        """The replay file."""
        return self.cassette.path

    def delay(self, recorded: float) -> float:
        """Seconds to wait for something recorded ``recorded`` seconds after the request (none here)."""
        return 0.0

    def scrubber(self, secrets: list[str] | None = None) -> Scrubber:
        """A scrubber knowing ``secrets`` besides the environment's and ``redact``'s."""
        return Scrubber(secrets or (), self.redact)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} ({len(self.cassette)} answers)>"


class Recorder(Tape):
    """Sends every request live and writes each answer to the file once it is read.

    With ``missing``, a request the file already answers is answered from it
    (at once) and only the others go live and are added: the file is completed,
    not re-recorded.
    """

    kind = "record"

    def __init__(
        self, cassette: Cassette, redact: Callable[[str], str] | None = None, *, missing: bool = False
    ) -> None:
        super().__init__(cassette, redact)
        self.missing = missing
        self._seen: set[str] = set()  # keys recorded by this recorder (earlier ones are replaced)
        self.recorded = 0
        self.reused = 0

    def take(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """With ``missing``, the file's answer for ``key`` (None: record it); else always None."""
        if not self.missing or canonical(key) in self._seen:
            return None  # recorded in this run: asked again, it is recorded again
        entry = self.cassette.take(key)
        if entry is not None:
            self.reused += 1
        return entry

    def add(self, entry: dict[str, Any]) -> None:
        """Keep ``entry`` (already scrubbed) and save the file."""
        entry.setdefault("recorded", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        name = canonical(entry["key"])
        first = name not in self._seen
        self._seen.add(name)
        self.cassette.put(entry, replace=first)
        self.recorded += 1
        self.cassette.save()


class Player(Tape):
    """Answers requests from the file; ``fallback`` sends the ones it lacks to a live backend.

    ``speed`` scales the recorded pacing: 1 replays at the pace of the
    recording, 2 twice as fast, 0 with no waiting at all. ``log``, a file
    (``replay check`` sets it), gets one JSON line per request: the file's
    line that answered it, or the request the file lacks.
    """

    kind = "replay"

    def __init__(
        self,
        cassette: Cassette,
        *,
        fallback: bool = False,
        speed: float = 1.0,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        if speed < 0:
            raise ValueError(f"the replay speed must be 0 (no waiting) or more, not {speed}")
        super().__init__(cassette, redact)
        self.fallback = fallback
        self.speed = speed
        self.missed = 0
        self.log: Path | None = None
        self._log_lock = threading.Lock()
        self._last = threading.local()  # per thread: the answer its last prompt was given
        self._last_any: dict[str, Any] | None = None  # the same, whatever the thread

    def take(self, key: dict[str, Any]) -> dict[str, Any] | None:
        """The file's answer for ``key``, or None; noted for :meth:`source` and in :attr:`log`."""
        entry = self.cassette.take(key)
        if prompt_of(key.get("local", key)):
            self._last.entry = self._last_any = entry  # None: a miss, so no older answer is named for it
        if self.log is not None:
            line = self.cassette.line_of(entry) if entry is not None else None
            self._write_log({"used": line} if entry is not None else {"missing": key})
        return entry

    def _write_log(self, record: dict[str, Any]) -> None:
        assert self.log is not None
        with self._log_lock, open(self.log, "a", encoding="utf-8") as out:
            out.write(_line(record) + "\n")

    def source(self, *, any_thread: bool = False) -> dict[str, Any] | None:
        """Where the last answer given in this thread came from (then forgotten), or None.

        ``any_thread``: the last answer given in any thread (a picture is
        asked from a worker thread while the cell's thread shows progress).

        ``tape`` (the file's name), ``entry`` (its line in the file),
        ``recorded`` (when, if the file says), ``model``, and the recorded
        figures ``time_to_first_token`` and ``duration`` (seconds), so that
        an output can show the recorded figures instead of the replay's.
        """
        entry = self._last_any if any_thread else getattr(self._last, "entry", None)
        if any_thread:
            self._last_any = None
        else:
            self._last.entry = None
        if entry is None:
            return None
        key = entry["key"].get("local", entry["key"])
        body = key.get("body", key) if isinstance(key, dict) else {}
        found: dict[str, Any] = {"tape": self.path.name, "entry": self.cassette.line_of(entry)}
        if entry.get("recorded"):
            found["recorded"] = entry["recorded"]
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            found["model"] = body["model"]
        times = [float(at) for at, _ in entry.get("pieces", entry.get("chunks", []))]
        end = float(entry.get("end", times[-1] if times else entry.get("ttfb", 0.0)))
        if times:
            found["time_to_first_token"] = times[0]
        found["duration"] = max(end, times[-1] if times else 0.0)
        return found

    def delay(self, recorded: float) -> float:
        """Seconds to wait for something recorded ``recorded`` seconds after the request."""
        return 0.0 if self.speed == 0 else max(0.0, recorded) / self.speed

    def miss(self, key: dict[str, Any], binding: str = "") -> NotRecordedError:
        """The one-line error for a request the file does not hold."""
        self.missed += 1
        prompt = " ".join(prompt_of(key.get("local", key)).split())
        if len(prompt) > 80:
            prompt = prompt[:79] + "…"
        if "local" in key:
            what = f"the prompt {prompt!r} to the embedded model"
        else:
            request = f"{key['method']} {key['path']}"
            what = f"the prompt {prompt!r} ({request})" if prompt else request
        return NotRecordedError(
            f"the replay file {self.path} has no answer for {what}; record it with "
            "%lollms record FILE --missing, or replay with --fallback embedded (or live) to have it answered",
            binding=binding,
        )
