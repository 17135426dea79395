"""An answer stopped while it was recorded replays as what it was: the same text, stopped, no error.

Recorded against the loopback servers and stopped the ways a user stops an
answer (a Stop from another thread while the server is busy, a loop left
early, Ctrl-C in a cell), on HTTP and on the embedded model's path; then
replayed with the servers gone, through the API and through ``%%lollms``.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from lollms_magics import get_binding, replay
from lollms_magics.bindings.base import Binding
from lollms_magics.core.session import Session
from lollms_magics.ipython.magics import LollmsMagics
from lollms_magics.response import Response
from lollms_magics.schema import GenerationRequest, ModelInfo
from lollms_magics.transport import tape
from tests.conftest import require_embedded_model


@pytest.fixture(autouse=True)
def _no_tape() -> Iterator[None]:
    replay.stop()
    yield
    replay.stop()


@pytest.fixture
def tape_file(tmp_path: Path) -> Path:
    return tmp_path / "stopped.replay.jsonl"


def answers(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n")[1:] if line]


def stop_after(response: Response, pieces: int, delay: float) -> list[str]:
    """Read ``response``; ``delay`` seconds after the ``pieces``-th piece, cancel it from another thread."""
    got: list[str] = []
    timer: threading.Timer | None = None
    for piece in response:
        got.append(piece)
        if len(got) == pieces:
            timer = threading.Timer(delay, response.cancel)
            timer.start()
    if timer is not None:
        timer.join()
    return got


def assert_stopped(response: Response) -> None:
    assert response.interrupted and not response.done
    assert response.finish_reason == "cancelled"
    assert response.error is None


# -- over HTTP ------------------------------------------------------------------------------


def test_a_stop_while_the_server_is_busy_replays_as_the_same_stopped_answer(
    openai_server: Any, tape_file: Path
) -> None:
    # 0.5 s between pieces: the Stop, 0.1 s after a piece, comes while the reader waits in the socket.
    openai_server.slow_pieces, openai_server.slow_delay = 40, 0.5
    host = openai_server.url
    replay.record(tape_file)
    live = get_binding("openai", host=host, model="slow").generate("Count slowly")
    got = stop_after(live, 3, 0.1)
    replay.stop()
    assert_stopped(live)
    assert got[:3] == [" tok"] * 3 and live.text == "".join(got)  # a 4th only if the timer was late
    [entry] = answers(tape_file)
    assert entry["cut"] is True and entry["end"] >= entry["chunks"][-1][0]
    openai_server.stop()

    replay.replay(tape_file, speed=0)
    again = get_binding("openai", host=host, model="slow").generate("Count slowly")
    pieces = list(again)  # no exception: the stop is replayed, not a broken stream
    assert pieces == got
    assert again.text == live.text
    assert_stopped(again)
    assert again.incomplete and again.metadata()["interrupted"] is True


def test_a_stop_between_two_events_that_came_together_keeps_only_what_was_read(
    ollama_server: Any, tape_file: Path
) -> None:
    """The loopback servers write some events two at a time: a stop after the first leaves the second out."""
    host = ollama_server.url
    replay.record(tape_file)
    live = get_binding("ollama", host=host, model="test-model").generate("one two three four five six")
    got: list[str] = []
    for piece in live:
        got.append(piece)
        if len(got) == 5:
            live.cancel()  # the Stop button's call, here from the reading thread itself
    replay.stop()
    assert_stopped(live)
    assert len(got) == 5
    ollama_server.stop()

    replay.replay(tape_file, speed=0)
    again = get_binding("ollama", host=host, model="test-model").generate("one two three four five six")
    assert list(again) == got
    assert_stopped(again)


def test_a_loop_left_early_replays_up_to_where_it_stopped(openai_server: Any, tape_file: Path) -> None:
    host = openai_server.url
    replay.record(tape_file)
    live = get_binding("openai", host=host, model="test-model").generate("Tell me a long story")
    got: list[str] = []
    for piece in live:
        got.append(piece)
        if len(got) == 4:
            break
    replay.stop()
    assert live.interrupted and "".join(got) == live.text
    openai_server.stop()

    replay.replay(tape_file, speed=0)
    again = get_binding("openai", host=host, model="test-model").generate("Tell me a long story")
    assert again.text == live.text  # .text reads all there is: the recorded part, then the stop
    assert_stopped(again)


def test_a_whole_answer_still_replays_as_done(openai_server: Any, tape_file: Path) -> None:
    host = openai_server.url
    replay.record(tape_file)
    live = get_binding("openai", host=host, model="test-model").generate("Whole")
    assert live.text == "Echo: Whole" and live.done
    replay.stop()
    assert "cut" not in answers(tape_file)[0]
    openai_server.stop()

    replay.replay(tape_file, speed=0)
    again = get_binding("openai", host=host, model="test-model").generate("Whole")
    assert again.text == "Echo: Whole" and again.done and again.finish_reason == "stop"


def test_a_stopped_answer_replays_at_the_time_it_was_stopped(openai_server: Any, tape_file: Path) -> None:
    openai_server.slow_pieces, openai_server.slow_delay = 40, 0.3
    host = openai_server.url
    replay.record(tape_file)
    live = get_binding("openai", host=host, model="slow").generate("Pace")
    stop_after(live, 2, 0.25)
    replay.stop()
    [entry] = answers(tape_file)
    openai_server.stop()
    # The stop came 0.25 s after the second piece: the replay waits as long, then stops.
    assert entry["end"] - entry["chunks"][-1][0] >= 0.2

    replay.replay(tape_file)
    again = get_binding("openai", host=host, model="slow").generate("Pace")
    start = time.perf_counter()
    pieces = [(time.perf_counter() - start, p) for p in again]
    ended = time.perf_counter() - start
    assert [p for _, p in pieces] == [" tok", " tok"]
    assert ended - pieces[-1][0] >= 0.2
    assert_stopped(again)


# -- through the magics ---------------------------------------------------------------------


@pytest.fixture
def magics(monkeypatch: pytest.MonkeyPatch) -> Iterator[LollmsMagics]:
    for name in ("LOLLMS_MAGICS_BINDING", "LOLLMS_MAGICS_MODEL", "LOLLMS_MAGICS_HOST",
                 "OPENAI_API_KEY", "LOLLMS_API_KEY", replay.ENV_REPLAY, replay.ENV_RECORD):
        monkeypatch.delenv(name, raising=False)
    shell = InteractiveShell.instance()
    shell.config.pop("LollmsMagics", None)  # left by %config in an earlier test
    if "lollms_magics" not in shell.extension_manager.loaded:
        shell.run_line_magic("load_ext", "lollms_magics")
    magics = LollmsMagics(shell=shell, session=Session(), footer=False)
    shell.register_magics(magics)
    yield magics
    magics.session.close()
    shell.configurables.remove(magics)


def ctrl_c_after(magics: LollmsMagics, pieces: int, delay: float) -> None:
    """Make the next answer of ``magics`` get a real SIGINT ``delay`` seconds after its ``pieces``-th piece.

    SIGINT is what Jupyter's interrupt sends the kernel; sent while the kernel
    waits for the server, it stops the read in the socket, as Ctrl-C does.
    """
    main = threading.main_thread().ident
    assert main is not None
    ask = magics.session.ask

    def interrupted(inner: Iterator[str]) -> Iterator[str]:
        for count, piece in enumerate(inner, 1):
            if count == pieces:
                threading.Timer(delay, signal.pthread_kill, (main, signal.SIGINT)).start()
            yield piece

    def ask_once(*args: Any, **kwargs: Any) -> Response:
        del magics.session.ask  # the next answers are left alone
        response: Response = ask(*args, **kwargs)
        assert response._source is not None
        response._source = interrupted(response._source)
        return response

    magics.session.ask = ask_once  # type: ignore[method-assign]


def test_ctrl_c_in_a_recorded_cell_replays_as_a_stopped_cell_that_does_not_fail(
    magics: LollmsMagics, openai_server: Any, tape_file: Path
) -> None:
    ip = magics.shell
    openai_server.slow_pieces, openai_server.slow_delay = 40, 0.3
    line = f"-b openai --host {openai_server.url} -m slow -o part"
    with capture_output():
        ip.run_line_magic("lollms", f"record {tape_file}")
    ctrl_c_after(magics, 3, 0.1)
    with capture_output() as live, pytest.raises(KeyboardInterrupt):
        ip.run_cell_magic("lollms", line, "Count")
    partial = ip.user_ns.pop("part")
    assert partial.startswith(" tok" * 3)
    with capture_output():
        ip.run_line_magic("lollms", "record off")
    assert answers(tape_file)[-1]["cut"] is True
    openai_server.stop()

    with capture_output():
        ip.run_line_magic("lollms", f"replay {tape_file} --speed 0")
    with capture_output() as again:
        ip.run_cell_magic("lollms", line, "Count")  # no KeyboardInterrupt, no CellFailure
    assert ip.user_ns["part"] == partial
    shown = again.outputs[-1]
    assert shown.data["text/markdown"] == live.outputs[-1].data["text/markdown"] == (
        partial + "\n\n**⚠ incomplete** — interrupted: the answer was stopped before its end"
    )
    metadata = shown.metadata["lollms_magics"]
    assert metadata["interrupted"] is True and metadata["finish_reason"] == "cancelled"
    assert "interrupted" not in again.stderr  # nothing was interrupted now: the answer was


# -- the embedded model's path (tape.run_local) ---------------------------------------------


class InProcess(Binding):
    """An in-process binding like the embedded one: its answers go through ``tape.run_local``."""

    name = "inprocess"
    default_host = "in-process"
    runs: ClassVar[list[str]] = []

    def _normalize_host(self, host: str) -> str:
        return host

    def _list_models(self) -> list[ModelInfo]:
        return [ModelInfo("fake", {})]

    def _generate(self, request: GenerationRequest, response: Response) -> Iterator[str]:
        call = {"binding": self.name, "model": "fake", "messages": [m.content for m in request.messages],
                "options": dict(request.options)}
        yield from tape.run_local(call, lambda: self._run(response), response)

    def _run(self, response: Response) -> Iterator[str]:
        self.runs.append("run")
        try:
            yield from ("Once", " upon", " a", " time", " there", " was")
            response.finish_reason = "stop"
        finally:
            response.completion_tokens = 6


def test_an_embedded_answer_stopped_while_recorded_replays_stopped(tape_file: Path) -> None:
    InProcess.runs.clear()
    replay.record(tape_file)
    live = InProcess(model="fake").generate("Tell a story")
    got = []
    for piece in live:
        got.append(piece)
        if len(got) == 3:
            threading.Thread(target=live.cancel).start()
            time.sleep(0.2)  # the Stop lands before the next piece is asked for
    replay.stop()
    assert_stopped(live)
    assert got == ["Once", " upon", " a"]
    [entry] = answers(tape_file)
    assert entry["cut"] is True and [p for _, p in entry["pieces"]] == got

    replay.replay(tape_file, speed=0)
    again = InProcess(model="fake").generate("Tell a story")
    assert list(again) == got  # no exception
    assert again.text == live.text
    assert_stopped(again)
    assert InProcess.runs == ["run"]  # not run again


def test_an_embedded_answer_read_whole_replays_as_done(tape_file: Path) -> None:
    replay.record(tape_file)
    live = InProcess(model="fake").generate("Whole story")
    assert live.text == "Once upon a time there was" and live.done
    replay.stop()
    replay.replay(tape_file, speed=0)
    again = InProcess(model="fake").generate("Whole story")
    assert again.text == live.text and again.done and again.finish_reason == "stop"


@pytest.mark.model
def test_the_real_embedded_model_stopped_while_recorded_replays_stopped(
    tape_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_embedded_model()
    from lollms_magics.bindings import llamacpp

    replay.record(tape_file)
    prompt = "Count from one to twenty."
    live = llamacpp.LlamaCppBinding().generate(prompt, n_predict=40, temperature=0, seed=1)
    got = []
    for piece in live:
        got.append(piece)
        if len(got) == 4:
            live.cancel()
    replay.stop()
    assert_stopped(live)
    assert len(got) == 4

    def no_model(*args: object) -> None:
        raise AssertionError("the model was loaded during a replay")

    monkeypatch.setattr(llamacpp, "_entry", no_model)
    replay.replay(tape_file, speed=0)
    again = llamacpp.LlamaCppBinding().generate(prompt, n_predict=40, temperature=0, seed=1)
    assert list(again) == got
    assert again.text == live.text
    assert_stopped(again)
