"""Record and replay for models run in-process, through ``tape.run_local``.

The embedded llama.cpp binding hands each answer to
:func:`lollms_magics.transport.tape.run_local` with what decides it (binding,
model, chat messages, options) and a function that streams it from the model.
While recording, the pieces are passed through and kept with the time each
came; while replaying, the recorded pieces come back at that pace (and the
model is never loaded), with the finish reason, the token counts and the
tool calls the model asked for restored.

An answer the reader stopped (a Stop, Ctrl-C, a loop left early) is kept
with ``"cut": true`` and the time of the stop. Replayed, it gives the same
pieces and then stops the same way: the response is cancelled, so it ends
incomplete and interrupted (finish reason ``"cancelled"``), with no error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from ..schema import ToolCall
from ..transport.tape import RecordedStop
from .cassette import Player, Recorder, Tape

__all__ = ["run_local"]

_RESTORED = ("finish_reason", "prompt_tokens", "completion_tokens")


def run_local(
    call: dict[str, Any], run: Callable[[], Iterator[str]], response: Any, tape: Tape | None
) -> Iterator[str]:
    """The pieces of an in-process answer under ``tape`` (None: straight from the model)."""
    if tape is None:
        return run()
    key = {"local": tape.scrubber().data(call)}
    if isinstance(tape, Player):
        entry = tape.take(key)
        if entry is not None:
            return _replay(entry, response, tape)
        if tape.fallback:
            return run()
        raise tape.miss(key, binding=str(call.get("binding", "")))
    assert isinstance(tape, Recorder)
    known = tape.take(key)  # recording only what the file lacks: this one it has
    if known is not None:
        return _replay(known, response, tape)
    return _record(tape, key, run, response)


def _record(
    tape: Recorder, key: dict[str, Any], run: Callable[[], Iterator[str]], response: Any
) -> Iterator[str]:
    scrubber = tape.scrubber()
    start = time.perf_counter()
    pieces: list[list[Any]] = []
    source = run()
    outcome = "failed"  # a failure is not kept: replaying it would hide that it failed
    try:
        for piece in source:
            pieces.append([round(time.perf_counter() - start, 3), scrubber.text(piece)])
            yield piece
        outcome = "done"
    except (GeneratorExit, KeyboardInterrupt):
        # The reader stopped early (a summary cutting an answer that repeats
        # itself, a Stop button, Ctrl-C): what it read is kept, so a replay stops there too.
        outcome = "cut"
        raise
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()  # stops the model now (it holds the model's lock) and sets the token counts
        if outcome != "failed":
            entry: dict[str, Any] = {"key": key, "pieces": pieces}
            for name in _RESTORED:
                entry[name] = getattr(response, name, None)
            calls = getattr(response, "tool_calls", None)
            if calls:  # the model asked for tools: the calls are its answer, replayed as such
                entry["tool_calls"] = scrubber.data([c.wire() for c in calls])
            if outcome == "cut":
                entry.update(cut=True, end=round(time.perf_counter() - start, 3))
            tape.add(entry)


def _replay(entry: dict[str, Any], response: Any, tape: Tape) -> Iterator[str]:
    start = time.perf_counter()
    response.prompt_tokens = entry.get("prompt_tokens")

    def wait_until(at: float) -> None:
        wait = start + tape.delay(at) - time.perf_counter()
        if wait > 0:
            time.sleep(wait)

    for at, piece in entry.get("pieces", []):
        wait_until(at)
        yield str(piece)
    response.completion_tokens = entry.get("completion_tokens")
    for wire in entry.get("tool_calls", ()):
        function = wire["function"]
        response.tool_calls.append(ToolCall.parse(wire["id"], function["name"], function.get("arguments")))
    if entry.get("cut"):
        # Stopped here when recorded: stop the answer the way a Stop does (the
        # response ends interrupted, its finish reason "cancelled"), not as finished.
        wait_until(float(entry.get("end", 0.0)))
        response.cancel()
        raise RecordedStop()
    response.finish_reason = entry.get("finish_reason")
