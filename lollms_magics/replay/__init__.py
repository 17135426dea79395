"""Record answers once, replay them anywhere: no server, no key, the same text at the same pace.

A teacher records a notebook against real backends::

    from lollms_magics import replay
    replay.record("course.replay.jsonl")     # or %lollms record course.replay.jsonl
    ...                                      # every answer is written to the file
    replay.stop()

and students replay it on a machine with no server::

    replay.replay("course.replay.jsonl")     # or %lollms replay course.replay.jsonl [--fallback]

Recording happens under the bindings: an httpx transport wraps every binding
client's transport (through :mod:`lollms_magics.transport.tape`), and the
embedded model's answers pass through ``tape.run_local``. So text, images,
model lists, summaries, panels and the ``LollmsClient`` API record and replay
without a special case. The file (:mod:`.cassette`) is keyed by the request
content alone (method, path, canonical JSON body) and never holds a header,
a key or a ``client_id`` (:mod:`.scrub`).

Turn a tape on before the bindings are made: a client made earlier keeps its
transport, and the magics close the session's bindings when a tape starts.
The environment variables :data:`ENV_REPLAY` (with :data:`ENV_FALLBACK` and
:data:`ENV_SPEED`) and :data:`ENV_RECORD` do the same when the extension
loads. They are also the teacher's switches for a notebook that replays its
own file (``%lollms replay FILE`` in a cell): ``LOLLMS_MAGICS_REPLAY=off``
makes that cell do nothing, so the notebook asks live backends, and
``LOLLMS_MAGICS_RECORD=FILE`` records the whole run into FILE instead.

Before a class, ``python -m lollms_magics.replay check NOTEBOOK`` runs the
notebook against its file with no server and lists every request the file
lacks (:mod:`.check`); ``record(FILE, missing=True)`` then records only
those, and ``prune`` drops the answers no cell uses.
Importing this package imports neither httpx nor a binding.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..transport import tape as _tape_hook
from .cassette import Cassette, Player, Recorder, Tape

__all__ = [
    "ENV_CHECK",
    "ENV_FALLBACK",
    "ENV_RECORD",
    "ENV_RECORD_MISSING",
    "ENV_REPLAY",
    "ENV_SPEED",
    "Player",
    "Recorder",
    "Tape",
    "active",
    "from_environment",
    "miss_mode",
    "on_miss",
    "record",
    "replay",
    "stop",
]

ENV_RECORD = "LOLLMS_MAGICS_RECORD"
ENV_REPLAY = "LOLLMS_MAGICS_REPLAY"
ENV_FALLBACK = "LOLLMS_MAGICS_REPLAY_FALLBACK"
ENV_SPEED = "LOLLMS_MAGICS_REPLAY_SPEED"
# Set by ``replay check`` in the kernel it runs: a replay there answers at once, never
# live, keeps the environment's file whatever the notebook names, and logs each request here.
ENV_CHECK = "LOLLMS_MAGICS_REPLAY_CHECK"
# With ENV_RECORD: record only what the file lacks (``record(..., missing=True)``).
ENV_RECORD_MISSING = "LOLLMS_MAGICS_RECORD_MISSING"

_active: Tape | None = None
_embedded_for: Player | None = None  # the player whose misses the embedded model answers
MISS_MODES = ("error", "live", "embedded")


def active() -> Tape | None:
    """The tape in use (a :class:`Recorder` or a :class:`Player`), or None."""
    return _active


def record(
    path: str | os.PathLike[str], *, redact: Callable[[str], str] | None = None, missing: bool = False
) -> Recorder:
    """Record every answer from now on into ``path`` (answers already there are kept).

    ``missing``: what the file already answers is answered from it, and only
    the rest is asked live and added. ``redact`` masks more secrets in what
    is stored (the session's ``keys.redact``); request headers, ``client_id``
    fields and the environment's ``*_KEY``-like values are always kept out.
    """
    cassette = Cassette.load(path) if os.path.exists(path) else Cassette(path)
    recorder = Recorder(cassette, redact, missing=missing)
    _start(recorder)
    return recorder


def replay(
    path: str | os.PathLike[str],
    *,
    fallback: bool | str = False,
    speed: float = 1.0,
    redact: Callable[[str], str] | None = None,
) -> Player:
    """Answer from the file at ``path`` from now on.

    A request the file lacks raises :class:`~lollms_magics.errors.NotRecordedError`
    (``fallback="error"`` or False), goes to the live backend (``"live"`` or
    True), or, with ``"embedded"``, a prompt it lacks is answered by the
    embedded model (marked so in the answer; the session puts that model
    last in its fallback chain). ``speed`` scales the
    recorded pacing (2: twice as fast; 0: no waiting). Raises
    ``FileNotFoundError`` or ``ValueError`` when the file cannot be used.
    """
    log = os.environ.get(ENV_CHECK, "").strip()
    if log:  # a check: nothing live, no waiting
        fallback, speed = False, 0.0
    global _embedded_for
    mode = miss_mode(fallback)
    player = Player(Cassette.load(path), fallback=mode == "live", speed=speed, redact=redact)
    _embedded_for = player if mode == "embedded" else None
    if log:
        player.log = Path(log)
    _start(player)
    return player


def miss_mode(fallback: bool | str | None) -> str:
    """``fallback`` as one of :data:`MISS_MODES` (True is ``"live"``, False and None ``"error"``)."""
    if fallback is True:
        return "live"
    if fallback is False or fallback is None:
        return "error"
    word = str(fallback).strip().lower()
    if word in MISS_MODES:
        return word
    if word in ("1", "true", "yes", "on"):
        return "live"
    if word in ("", "0", "false", "no", "off"):
        return "error"
    raise ValueError(f"a replay's fallback is error, live or embedded, not {fallback!r}")


def on_miss() -> str | None:
    """What answers a prompt the playing file lacks: "error", "live" or "embedded" (None: no replay)."""
    tape = _active
    if not isinstance(tape, Player):
        return None
    if tape is _embedded_for:
        return "embedded"
    return "live" if tape.fallback else "error"


def stop() -> Tape | None:
    """Go live again; returns the tape that was on, if any."""
    global _active
    previous, _active = _active, None
    return previous


def from_environment(redact: Callable[[str], str] | None = None) -> Tape | None:
    """Start the tape the environment asks for (:data:`ENV_REPLAY` first, then :data:`ENV_RECORD`)."""
    replay_path = os.environ.get(ENV_REPLAY, "").strip()
    if replay_path and replay_path.lower() != "off":
        try:
            fallback = miss_mode(os.environ.get(ENV_FALLBACK, ""))
        except ValueError:
            raise ValueError(f"{ENV_FALLBACK} must be error, live or embedded") from None
        speed_text = os.environ.get(ENV_SPEED, "").strip()
        try:
            speed = float(speed_text) if speed_text else 1.0
        except ValueError:
            raise ValueError(f"{ENV_SPEED} must be a number, not {speed_text!r}") from None
        return replay(replay_path, fallback=fallback, speed=speed, redact=redact)
    record_path = os.environ.get(ENV_RECORD, "").strip()
    if record_path:
        missing = os.environ.get(ENV_RECORD_MISSING, "").strip().lower() in ("1", "true", "yes", "on")
        return record(record_path, redact=redact, missing=missing)
    return None


def _start(tape: Tape) -> None:
    global _active
    _active = tape
    # Installing costs nothing: the wrappers import httpx when a client is made.
    if _tape_hook.current() is not _wrap:
        _tape_hook.install(_wrap)
    _tape_hook.install_local(_local)


def _wrap(transport: Any, *, verify: bool, trust_env: bool) -> Any:
    """The tape hook's wrapper: every client made from now on goes through a TapeTransport."""
    from .http import TapeTransport

    return TapeTransport(transport, verify=verify, trust_env=trust_env, active=active)


def _local(call: dict[str, Any], run: Callable[[], Iterator[str]], response: Any) -> Iterator[str]:
    from ..errors import NotRecordedError
    from .local import run_local

    tape = _active
    try:
        return run_local(call, run, response, tape)
    except NotRecordedError:
        if tape is None or tape is not _embedded_for:
            raise
    # --fallback embedded: the model answers what the file lacks, and the answer says so.
    response.notes.append("not in the replay file: answered live by the embedded model")
    response.fallback = {"replay_miss": True, "answered_by": "the embedded model"}
    return run()
