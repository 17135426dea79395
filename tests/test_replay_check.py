"""A class's tape, prepared before class: check, record what is missing, prune, replay the same bytes.

``tests/replayed/lesson.ipynb`` replays ``lesson.replay.jsonl``, recorded once
from the Ollama stand-in (tests/servers) by ``tests/replayed/record.py``.
The check and prune run it headless, with no server, as a teacher (or a course's
CI) runs ``python -m lollms_magics.replay``.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from nbclient import NotebookClient

from lollms_magics import replay
from lollms_magics.replay.check import differences
from tests.shell import CHOICE, magics_shell
from tests.test_notebook_outputs import outputs as notebook_outputs

LESSON = Path(__file__).resolve().parent / "replayed"
ROOT = LESSON.parent.parent


@pytest.fixture(autouse=True)
def _no_tape():
    replay.stop()
    yield
    replay.stop()


@pytest.fixture
def lesson(tmp_path: Path) -> Path:
    """A copy of the lesson and its tape, to change."""
    for name in ("lesson.ipynb", "lesson.replay.jsonl"):
        shutil.copy(LESSON / name, tmp_path / name)
    return tmp_path / "lesson.ipynb"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOLLMS_MAGICS_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lollms_magics.replay", *args],
        capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=600, check=False,
    )


def _edit(path: Path, changes: dict[str, str], append: str | None = None) -> None:
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for old, new in changes.items():
            if old in cell.source:
                cell.source = cell.source.replace(old, new)
    if append:
        nb.cells.append(nbformat.v4.new_code_cell(append))
    nbformat.write(nb, path)


def _tape_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[1:]]


@pytest.mark.timeout(600)
def test_the_check_reports_every_missing_request_and_fails(lesson: Path) -> None:
    _edit(lesson, {
        "%%lollms -o mountain\n": "%%lollms -o mountain -t 0.7\n",  # a changed option
        '["Paris", "Rome"]': '["Paris", "Rome", "Oslo"]',  # a new prompt in a mapped cell
    }, append="%%lollms\nName a lake in Switzerland.")  # a new cell
    tape_before = (lesson.parent / "lesson.replay.jsonl").read_bytes()
    done = _cli("check", str(lesson))
    assert done.returncode == 1, done.stdout + done.stderr
    report = done.stdout
    assert "3 request(s) not on the tape (3 answered from it)" in report
    # Each with its cell, the start of its prompt, and the nearest entry with what differs.
    assert "cell 6: %%lollms -o mountain -t 0.7\n  prompt: 'Name a mountain in Italy.'\n" \
        "  nearest on the tape: line 3; options: temperature 0.7 here, \"—\" on the tape" in report
    assert "cell 8: %%lollms --each cities -o facts\n  prompt: 'One fact about Oslo.'\n" \
        "  nearest on the tape: line " in report
    assert "prompt 'One fact about Paris.' on the tape" in report or \
        "prompt 'One fact about Rome.' on the tape" in report
    assert "cell 9: %%lollms\n  prompt: 'Name a lake in Switzerland.'\n  nearest on the tape: line " in report
    assert report.count("One fact about Oslo.") == 1  # the mapped item, tried twice, is one miss
    assert (lesson.parent / "lesson.replay.jsonl").read_bytes() == tape_before  # a check changes nothing


def test_the_nearest_entry_says_which_model_history_and_options_differ() -> None:
    def chat(model: str, messages: list[dict[str, str]], **options: Any) -> dict[str, Any]:
        return {"method": "POST", "path": "/api/chat",
                "body": {"model": model, "stream": True, "messages": messages, "options": options}}

    river = [{"role": "user", "content": "Name a river."}, {"role": "assistant", "content": "The Seine."}]
    asked = chat("tiny", [*river, {"role": "user", "content": "And a lake?"}], temperature=0.5)
    recorded = chat("small", [{"role": "user", "content": "And a lake?"}], temperature=0.2, top_k=40)
    assert differences(asked, recorded) == [
        "model 'tiny' here, 'small' on the tape",
        'options: temperature 0.5 here, 0.2 on the tape, top_k "—" here, 40 on the tape',
        "history: 2 message(s) here, 0 on the tape",
    ]
    local = {"local": {"binding": "llamacpp", "model": "m.gguf", "options": {"n_predict": 9},
                       "messages": [{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": "Name a lake in Italy."}]}}
    changed = json.loads(json.dumps(local))
    changed["local"]["messages"][0]["content"] = "Be long."
    changed["local"]["messages"][1]["content"] = "Name a lake in Spain."
    assert differences(local, changed) == [
        "prompt 'Name a lake in Spain.' on the tape", "history differs from message 1 on"]


@pytest.mark.timeout(600)
def test_prune_drops_the_answers_no_cell_uses(lesson: Path) -> None:
    tape = lesson.parent / "lesson.replay.jsonl"
    entries = _tape_lines(tape)
    unused = json.loads(json.dumps(entries[0]))
    unused["key"]["body"]["messages"][0]["content"] = "Name a desert in Spain."
    with open(tape, "a", encoding="utf-8") as out:
        out.write(json.dumps(unused) + "\n")
    done = _cli("prune", str(lesson))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lesson.replay.jsonl: 1 answer(s) no cell uses dropped" in done.stdout
    assert _tape_lines(tape) == entries  # the unused answer went, every used one stayed as it was


@pytest.mark.timeout(600)
def test_the_check_from_a_cell_shows_the_report_and_fails_the_cell(ip: Any, lesson: Path) -> None:
    _edit(lesson, {"Name a mountain in Italy.": "Name a mountain in Peru."})
    with pytest.raises(UsageError, match="asks for what its replay file lacks"), capture_output() as cap:
        ip.run_line_magic("lollms", f"replay check {lesson}")
    assert "1 request(s) not on the tape" in cap.stdout
    assert "prompt: 'Name a mountain in Peru.'" in cap.stdout
    assert replay.active() is None  # this kernel's tape is left as it was


@pytest.mark.timeout(600)
def test_prune_keeps_everything_when_a_request_is_missing(lesson: Path) -> None:
    # No replay cell of its own: the tape given replays from the start.
    _edit(lesson, {"Name a river in France.": "Name a river in Spain.",
                   "%lollms replay lesson.replay.jsonl --speed 0": "pass"})
    tape = lesson.parent / "elsewhere.replay.jsonl"
    (lesson.parent / "lesson.replay.jsonl").rename(tape)
    before = tape.read_bytes()
    done = _cli("prune", str(lesson), "--tape", str(tape))
    assert done.returncode == 1
    assert "lesson.ipynb against elsewhere.replay.jsonl: 2 request(s) not on the tape" in done.stdout
    assert "prompt: 'Name a river in Spain.'" in done.stdout
    # The next question carries the river's exchange no more: its history differs from the tape's.
    assert "prompt: 'Name a mountain in Italy.'\n  nearest on the tape: line 3; " \
        "history: 0 message(s) here, 2 on the tape" in done.stdout
    assert "not pruned" in done.stdout
    assert tape.read_bytes() == before


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch):
    unset = (*CHOICE, replay.ENV_REPLAY, replay.ENV_RECORD, replay.ENV_CHECK)
    with magics_shell(monkeypatch, unset=unset, load_ext=True) as shell:
        yield shell


def _run(ip: Any, line: str, body: str | None = None) -> Any:
    with capture_output() as cap:
        if body is None:
            ip.run_line_magic("lollms", line)
        else:
            ip.run_cell_magic("lollms", line, body)
    return cap


def _answer(cap: Any) -> str:
    return str(cap.outputs[-1].data["text/markdown"])


def test_record_missing_asks_only_what_the_tape_lacks(ip: Any, ollama_server: Any, lesson: Path) -> None:
    ollama_server.models = ("tiny",)
    tape = lesson.parent / "lesson.replay.jsonl"
    before = _tape_lines(tape)
    shown = _run(ip, f"record {tape} --missing")
    assert "recording what" in shown.stdout and "4 answer(s) there are replayed" in shown.stdout
    _run(ip, f"use ollama:tiny --host {ollama_server.url}")
    on_tape = _run(ip, "-t 0.2", "Name a river in France.")
    assert _answer(on_tape) == "The **Seine** flows through Paris."  # the tape's answer, not the echo
    assert ollama_server.requests_to("/api/chat") == []
    new = _run(ip, "", "Name a lake in Switzerland.")
    assert _answer(new) == "Echo: Name a lake in Switzerland."
    assert len(ollama_server.requests_to("/api/chat")) == 1
    _run(ip, "record off")
    after = _tape_lines(tape)
    assert after[: len(before)] == before  # what was there is kept as it was
    assert len(after) == len(before) + 1
    added = after[-1]["key"]["body"]["messages"]
    assert added[-1] == {"role": "user", "content": "Name a lake in Switzerland."}
    assert added[0]["content"] == "Name a river in France."  # asked after the river, as in class
    # Replayed strictly, the same two cells answer from the file with no server.
    host = ollama_server.url
    ollama_server.stop()
    _run(ip, "reset")  # the lesson again, from its first question
    _run(ip, f"replay {tape} --speed 0")
    _run(ip, f"use ollama:tiny --host {host}")
    assert _answer(_run(ip, "-t 0.2", "Name a river in France.")) == "The **Seine** flows through Paris."
    assert _answer(_run(ip, "", "Name a lake in Switzerland.")) == "Echo: Name a lake in Switzerland."


def _assert_same(first: bytes, second: bytes) -> None:
    """The two saved notebooks are the same bytes; else fail showing where they differ."""
    if first != second:
        diff = difflib.unified_diff(first.decode("utf-8").splitlines(), second.decode("utf-8").splitlines(),
                                    "first", "second", lineterm="", n=3)
        pytest.fail("the two replays saved different notebooks:\n" + "\n".join(list(diff)[:80]))


def _replayed_bytes(notebook: Path, save_as: Path) -> bytes:
    nb = nbformat.read(notebook, as_version=4)
    # Cell timestamps are the runner's (Jupyter records none unless asked): left out here.
    NotebookClient(nb, timeout=300, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(notebook.parent)}}).execute(env=_env())
    # Streams are joined as JupyterLab joins them: a print() in the notebook's own code writes its
    # pieces apart, and a busy kernel may send them as two outputs (ours write each line whole).
    notebook_outputs.merge_streams(nb)
    nbformat.write(nb, save_as)
    return save_as.read_bytes()


@pytest.mark.timeout(600)
def test_a_notebook_replayed_twice_saves_the_same_bytes(lesson: Path, tmp_path: Path) -> None:
    first = _replayed_bytes(lesson, tmp_path / "first.ipynb")
    _assert_same(first, _replayed_bytes(lesson, tmp_path / "second.ipynb"))
    cells = nbformat.reads(first.decode("utf-8"), as_version=4).cells
    river = cells[4].outputs[0]
    # The footer shows the recorded figures; the metadata names the tape's entry, its date, its model.
    assert river["data"]["text/markdown"].endswith("<sub>tiny · 12 tokens · 5500.0 tok/s · 0.2 s</sub>")
    meta = river["metadata"]["lollms_magics"]
    assert meta["replay"] == {"tape": "lesson.replay.jsonl", "entry": 2, "model": "tiny",
                              "recorded": "2026-12-03T12:33:57Z"}
    assert meta["duration"] == 0.174 and meta["time_to_first_token"] == 0.172
    assert cells[7].outputs[0]["data"] == {"text/plain": "2/2 done"}  # the mapped cell's line, no rate


@pytest.mark.timeout(600)
def test_a_teaching_notebook_with_pictures_replayed_twice_saves_the_same_bytes(tmp_path: Path) -> None:
    notebook = ROOT / "notebooks" / "04_text_to_image.ipynb"
    first = _replayed_bytes(notebook, tmp_path / "first.ipynb")
    _assert_same(first, _replayed_bytes(notebook, tmp_path / "second.ipynb"))
    pictures = [o for c in nbformat.reads(first.decode("utf-8"), as_version=4).cells if c.cell_type == "code"
                for o in c.outputs if "image/png" in o.get("data", {}) and "lollms_magics" in o["metadata"]]
    assert len(pictures) == 2  # %lollms image and %%lollms image
    sources = [o["metadata"]["lollms_magics"]["replay"] for o in pictures]
    assert all(s["tape"] == "04_text_to_image.replay.jsonl" and s["entry"] > 1 for s in sources)
