"""%lollms record / replay in a real shell, the environment variables, and the embedded model's seam."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from lollms_magics import replay
from lollms_magics.errors import NotRecordedError
from lollms_magics.ipython.failure import CellFailure
from tests.conftest import require_embedded_model
from tests.shell import CHOICE, magics_shell


@pytest.fixture(autouse=True)
def _no_tape():
    replay.stop()
    yield
    replay.stop()


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch):
    unset = (*CHOICE, "OPENAI_API_KEY", "LOLLMS_API_KEY", replay.ENV_REPLAY, replay.ENV_RECORD)
    with magics_shell(monkeypatch, unset=unset, load_ext=True) as shell:
        yield shell


def run(ip: Any, line: str, body: str | None = None) -> Any:
    with capture_output() as cap:
        if body is None:
            ip.run_line_magic("lollms", line)
        else:
            ip.run_cell_magic("lollms", line, body)
    return cap


def test_record_off_then_replay_gives_the_same_cell(ip: Any, openai_server: Any, tmp_path: Path) -> None:
    path = tmp_path / "lesson.replay.jsonl"
    host = openai_server.url
    started = run(ip, f"record {path}").stdout
    assert started == f"lollms: recording answers to {path}; %lollms record off stops\n"
    live = run(ip, f"-b openai --host {host} -m test-model", "Explain tides")
    assert run(ip, "record off").stdout == f"lollms: recording stopped; 1 answer(s) written to {path}\n"
    openai_server.stop()

    assert run(ip, f"replay {path}").stdout == f"lollms: replaying 1 answer(s) from {path}\n"
    again = run(ip, f"-b openai --host {host} -m test-model", "Explain tides")
    answer = again.outputs[-1].data["text/markdown"]
    assert answer == live.outputs[-1].data["text/markdown"] == "Echo: Explain tides"
    with capture_output(), pytest.raises(CellFailure, match="has no answer for the prompt 'Explain waves'"):
        ip.run_cell_magic("lollms", f"-b openai --host {host} -m test-model", "Explain waves")
    assert run(ip, "replay off").stdout == "lollms: replay stopped; answers come from live backends again\n"
    assert replay.active() is None


def test_replay_fallback_flag_and_usage_errors(ip: Any, openai_server: Any, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    run(ip, f"record {path}")
    run(ip, f"-b openai --host {openai_server.url}", "One")
    run(ip, "record off")
    out = run(ip, f"replay {path} --fallback --speed 0").stdout
    # two answers: the model list (no -m: the first model is used) and the prompt
    assert out == f"lollms: replaying 2 answer(s) from {path}, live backends for the rest\n"
    tape = replay.active()
    assert isinstance(tape, replay.Player) and tape.fallback and tape.speed == 0
    two = run(ip, f"-b openai --host {openai_server.url}", "Two")
    assert two.outputs[-1].data["text/markdown"] == "Echo: Two"
    with pytest.raises(UsageError, match=r"^%lollms replay: no replay file at .*nowhere\.jsonl$"):
        ip.run_line_magic("lollms", f"replay {tmp_path / 'nowhere.jsonl'}")
    with pytest.raises(UsageError, match="argument --speed: invalid float value: 'fast'"):
        ip.run_line_magic("lollms", f"replay {path} --speed fast")
    assert run(ip, "record off").stdout == "lollms: nothing was being recorded\n"


def test_a_replay_file_named_by_the_environment_is_used_when_the_extension_loads(
    openai_server: Any, tmp_path: Path
) -> None:
    """In a fresh kernel: the variable is read at %load_ext, httpx is not imported by it."""
    path = tmp_path / "env.jsonl"
    host = openai_server.url
    replay.record(path)
    from lollms_magics import get_binding

    get_binding("openai", host=host, model="test-model").generate("From the environment").text  # noqa: B018
    replay.stop()
    openai_server.stop()
    script = textwrap.dedent(f"""
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.utils.capture import capture_output
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "lollms_magics")
        print("httpx loaded at load_ext:", "httpx" in sys.modules)
        with capture_output():
            line = "-b openai --host {host} -m test-model -o a"
            shell.run_cell_magic("lollms", line, "From the environment")
        print("answer:", shell.user_ns["a"])
    """)
    env = {**os.environ, replay.ENV_REPLAY: str(path)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert "httpx loaded at load_ext: False" in done.stdout
    assert "answer: Echo: From the environment" in done.stdout


@pytest.mark.model
def test_embedded_answers_go_through_the_tape_seam(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The llama.cpp binding's seam, with the model's own streaming replaced by a fake run()."""
    from lollms_magics.bindings import llamacpp
    from lollms_magics.transport import tape

    calls: list[dict[str, Any]] = []

    def fake_run(self: Any, path: Any, request: Any, response: Any) -> Any:
        calls.append({"model": response.model})
        for piece in ("Blue", " sky", "."):
            time.sleep(0.05)
            yield piece
        response.finish_reason, response.prompt_tokens, response.completion_tokens = "stop", 21, 3

    require_embedded_model()
    monkeypatch.setattr(llamacpp.LlamaCppBinding, "_run", fake_run)
    path = tmp_path / "embedded.jsonl"
    replay.record(path)
    binding = llamacpp.LlamaCppBinding()
    live = binding.generate("Colour of the sky?", n_predict=8, temperature=0)
    assert live.text == "Blue sky."
    replay.stop()
    stored = [json.loads(line) for line in path.read_text().splitlines()][1]
    assert stored["key"] == {"local": {
        "binding": "llamacpp", "model": binding.model,
        "messages": [{"role": "user", "content": "Colour of the sky?"}],
        "options": {"n_predict": 8, "temperature": 0.0},
    }}
    assert [p for _, p in stored["pieces"]] == ["Blue", " sky", "."]
    assert stored["finish_reason"] == "stop" and stored["completion_tokens"] == 3

    replay.replay(path)
    start = time.perf_counter()
    again = binding.generate("Colour of the sky?", n_predict=8, temperature=0)
    assert list(again) == ["Blue", " sky", "."]
    assert 0.12 < time.perf_counter() - start < 1.5  # three pieces 50 ms apart, paced again
    assert (again.finish_reason, again.prompt_tokens, again.completion_tokens) == ("stop", 21, 3)
    assert len(calls) == 1  # the model was not asked again
    with pytest.raises(NotRecordedError, match="no answer for the prompt 'Another' to the embedded model"):
        _ = binding.generate("Another").text
    assert tape.current() is not None


def test_the_environment_switches_a_notebooks_replay_cell(
    ip: Any, openai_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "nb.jsonl"
    run(ip, f"record {path}")
    run(ip, "record off")
    monkeypatch.setenv(replay.ENV_REPLAY, "off")
    assert run(ip, f"replay {path}").stdout == (
        f"lollms: not replaying {path}: LOLLMS_MAGICS_REPLAY=off asks for live backends\n"
    )
    assert replay.active() is None
    monkeypatch.delenv(replay.ENV_REPLAY)
    other = tmp_path / "teacher.jsonl"
    monkeypatch.setenv(replay.ENV_RECORD, str(other))
    replay.from_environment()
    assert run(ip, f"replay {path}").stdout == (
        f"lollms: not replaying {path}: recording to {other} (LOLLMS_MAGICS_RECORD)\n"
    )
    run(ip, f"-b openai --host {openai_server.url} -m test-model", "Teach me")
    assert "Teach me" in other.read_text(encoding="utf-8")



@pytest.mark.model
def test_an_answer_the_reader_left_early_is_kept_up_to_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A summary cuts an answer that repeats itself: the replay must give the same prefix."""
    from lollms_magics.bindings import llamacpp

    closed: list[bool] = []

    def fake_run(self: Any, path: Any, request: Any, response: Any) -> Any:
        try:
            yield from ("one", " two", " three", " four")
        finally:
            closed.append(True)

    require_embedded_model()
    monkeypatch.setattr(llamacpp.LlamaCppBinding, "_run", fake_run)
    path = tmp_path / "early.jsonl"
    replay.record(path)
    for piece in llamacpp.LlamaCppBinding().generate("Count"):
        if piece == " two":
            break
    assert closed == [True]
    stored = json.loads(path.read_text(encoding="utf-8").splitlines()[1])
    assert [p for _, p in stored["pieces"]] == ["one", " two"] and stored["cut"] is True

    replay.replay(path, speed=0)
    assert llamacpp.LlamaCppBinding().generate("Count").text == "one two"
    assert closed == [True]  # the model was not run again
