"""``%lollms record`` and ``%lollms replay``: a notebook's answers kept in a file and played back.

::

    %lollms record answers.jsonl       every answer from now on is written to the file
    %lollms record answers.jsonl --missing    only what the file lacks (the rest is replayed)
    %lollms record off                 stop recording
    %lollms replay answers.jsonl [--fallback [error|live|embedded]] [--speed 2]
    %lollms replay off                 live backends again
    %lollms replay check NOTEBOOK [--tape FILE]   what NOTEBOOK asks that its file lacks
    %lollms replay prune NOTEBOOK [--tape FILE]   drop the answers no cell of NOTEBOOK uses

The file is relative to the kernel's working folder, which Jupyter sets to
the notebook's own. ``LOLLMS_MAGICS_REPLAY=FILE`` (with
``LOLLMS_MAGICS_REPLAY_FALLBACK=1`` and ``LOLLMS_MAGICS_REPLAY_SPEED``) or
``LOLLMS_MAGICS_RECORD=FILE`` starts the same when the extension loads.
In a notebook that replays its own file, ``LOLLMS_MAGICS_REPLAY=off`` turns
its ``%lollms replay`` cell into a note (live backends answer), and
``LOLLMS_MAGICS_RECORD=FILE`` records the run instead of replaying it.
The work is done by :mod:`lollms_magics.replay`; this module parses and reports.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .. import replay
from .args import Parser
from .commands import COMMANDS, Command
from .plain import say

if TYPE_CHECKING:
    from ..core.session import Session
    from .magics import LollmsMagics

__all__ = ["start_from_environment"]


def _record_parser() -> Parser:
    p = Parser("%lollms record")
    p.add_argument("file", nargs="?", help="the replay file, or 'off'")
    p.add_argument("--missing", action="store_true", help="record only what the file lacks")
    return p


def _replay_parser() -> Parser:
    p = Parser("%lollms replay")
    p.add_argument("file", nargs="?", help="the replay file, 'off', 'check' or 'prune'")
    p.add_argument("notebook", nargs="?", help="with check or prune: the notebook")
    p.add_argument("--tape", help="with check or prune: the replay file (default: the notebook's)")
    p.add_argument(
        "--fallback", nargs="?", const="live", default="error", choices=replay.MISS_MODES,
        help="what answers a prompt the file lacks: error (the cell fails), live (a live backend; "
        "--fallback alone) or embedded (the embedded model, marked as such)",
    )
    p.add_argument("--speed", type=float, default=1.0, help="pace factor: 2 twice as fast, 0 no waiting")
    return p


def _fresh_clients(session: Session) -> None:
    """Close the session's bindings, so that the next ones are made with the tape under them."""
    session.close()
    close_images = getattr(session, "close_images", None)
    if close_images is not None:
        close_images()
    if session.configured() is None:
        session.use("auto")  # the automatic choice is made again, on the tape


def _describe(tape: replay.Tape | None) -> str:
    if tape is None:
        return "lollms: no recording or replay; answers come from live backends"
    if isinstance(tape, replay.Player):
        extra = ", live backends for the rest" if tape.fallback else ""
        if replay.on_miss() == "embedded" and tape is replay.active():
            extra = ", the embedded model for the rest"
        return f"lollms: replaying {len(tape.cassette)} answer(s) from {tape.path}{extra}"
    return f"lollms: recording answers to {tape.path}"


def _off(kind: str) -> None:
    tape = replay.active()
    if tape is None or tape.kind != kind:
        say(f"lollms: nothing was being {'recorded' if kind == 'record' else 'replayed'}")
        return
    replay.stop()
    if isinstance(tape, replay.Recorder):
        say(f"lollms: recording stopped; {tape.recorded} answer(s) written to {tape.path}")
    else:
        say("lollms: replay stopped; answers come from live backends again")


def _record(magics: LollmsMagics, args: Any, cell: str | None) -> None:
    if args.file is None:
        say(_describe(replay.active()))
        return
    if args.file.lower() == "off":
        _off("record")
        return
    try:
        tape = replay.record(args.file, redact=magics.session.keys.redact, missing=args.missing)
    except (OSError, ValueError) as exc:
        raise UsageError(f"%lollms record: {exc}") from None
    _fresh_clients(magics.session)
    if args.missing:
        say(f"lollms: recording what {tape.path} lacks ({len(tape.cassette)} answer(s) there are "
              "replayed); %lollms record off stops")
        return
    kept = f" ({len(tape.cassette)} answer(s) already there)" if len(tape.cassette) else ""
    say(f"lollms: recording answers to {tape.path}{kept}; %lollms record off stops")


def _replay(magics: LollmsMagics, args: Any, cell: str | None) -> None:
    if args.file is None:
        say(_describe(replay.active()))
        return
    if args.file.lower() == "off":
        _off("replay")
        return
    if args.file in ("check", "prune"):
        _check(args.file, args.notebook, args.tape)
        return
    if args.notebook is not None:
        raise UsageError(f"%lollms replay: one file only (got {args.file} and {args.notebook})")
    overridden = _overridden(args.file)
    if overridden:
        say(overridden)
        return
    if args.fallback == "embedded":
        import importlib.util

        if importlib.util.find_spec("llama_cpp") is None:
            raise UsageError(
                "%lollms replay --fallback embedded: the embedded model needs "
                "pip install 'lollms-magics[local]'"
            )
    try:
        tape = replay.replay(
            args.file, fallback=args.fallback, speed=args.speed, redact=magics.session.keys.redact
        )
    except (OSError, ValueError) as exc:
        raise UsageError(f"%lollms replay: {exc}") from None
    _fresh_clients(magics.session)
    say(_describe(tape))


def _check(command: str, notebook: str | None, tape: str | None) -> None:
    """Run ``python -m lollms_magics.replay check|prune`` and show its report; a miss fails the cell."""
    if notebook is None:
        raise UsageError(f"%lollms replay {command} NOTEBOOK [--tape FILE]: which notebook?")
    # Its own process: the notebook runs in a fresh kernel, and this kernel's tape stays as it is.
    argv = [sys.executable, "-m", "lollms_magics.replay", command, notebook]
    if tape:
        argv += ["--tape", tape]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    say(done.stdout.rstrip())
    if done.returncode == 2:
        raise UsageError(f"%lollms replay {command}: {done.stderr.strip().removeprefix('lollms: ')}")
    if done.returncode != 0:
        raise UsageError(f"%lollms replay {command}: {notebook} asks for what its replay file lacks")


def _overridden(path: str) -> str:
    """Why the environment makes ``%lollms replay PATH`` do nothing ('' when it does not)."""
    if os.environ.get(replay.ENV_REPLAY, "").strip().lower() == "off":
        return f"lollms: not replaying {path}: {replay.ENV_REPLAY}=off asks for live backends"
    tape = replay.active()
    if isinstance(tape, replay.Player) and os.environ.get(replay.ENV_CHECK, "").strip():
        return f"lollms: not replaying {path}: checking against {tape.path} ({replay.ENV_CHECK})"
    if isinstance(tape, replay.Recorder) and os.environ.get(replay.ENV_RECORD, "").strip():
        return f"lollms: not replaying {path}: recording to {tape.path} ({replay.ENV_RECORD})"
    return ""


def start_from_environment(session: Session) -> None:
    """Start the tape named by the environment (``LOLLMS_MAGICS_REPLAY`` or ``LOLLMS_MAGICS_RECORD``)."""
    try:
        tape = replay.from_environment(redact=session.keys.redact)
    except (OSError, ValueError) as exc:
        raise UsageError(f"lollms: {exc}") from None
    if tape is not None:
        _fresh_clients(session)


COMMANDS["record"] = Command(
    _record, (0, 1), "%lollms record FILE|off [--missing]", "write every answer to FILE (for replay)",
    parser=_record_parser(),
)
COMMANDS["replay"] = Command(
    _replay, (0, 2), "%lollms replay FILE|off [--fallback] [--speed X] | check|prune NOTEBOOK [--tape FILE]",
    "answer from a recorded FILE, with no server or key", parser=_replay_parser(),
)
