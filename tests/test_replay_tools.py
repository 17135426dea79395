"""A ``--tools`` cell recorded, then replayed: the model's side from the file, the functions run again.

When a function returns something else than when recorded (the data
changed), the replay still finds the model's recorded answers (a request is
matched without the content of its tool messages) and the cell says which
call changed, instead of a miss or a silent divergence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_magics import replay
from lollms_magics.replay.scrub import canonical
from tests.conftest import require_embedded_model
from tests.test_magics import cell, ip  # noqa: F401  (ip is the fixture)
from tests.test_magics_tools import HOST, Model, _answer


@pytest.fixture(autouse=True)
def _no_tape():
    replay.stop()
    yield
    replay.stop()


def _table(ip: Any, price: float) -> None:  # noqa: F811
    def mean_of(column: str) -> float:
        """The mean of a column of the prices table."""
        return {"price": price}[column]

    ip.user_ns["mean_of"] = mean_of


def _record(ip: Any, path: Path, model: Model) -> Any:  # noqa: F811
    ip.lollms.session.binding_config["transport"] = httpx.MockTransport(model)
    cell(ip, f"record {path}")
    cap = cell(ip, f"-b openai --host {HOST} --tools mean_of --yes", "What is the mean price?")
    cell(ip, "record off")
    return cap


def test_a_replay_runs_the_functions_again_and_says_which_returned_something_else(ip, tmp_path):  # noqa: F811
    path = tmp_path / "tools.replay.jsonl"
    model = Model()
    _table(ip, 2.5)
    recorded = _record(ip, path, model)
    assert _answer(recorded) == "The tool said: 2.5"
    entries = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    rounds = [e["key"]["body"]["messages"] for e in entries if "body" in e["key"]]
    assert [m[-1]["role"] for m in rounds] == ["user", "tool"]  # each round is on tape
    assert rounds[1][-1]["content"] == "2.5"  # with the result sent back

    cell(ip, f"replay {path} --speed 0")
    _table(ip, 3.0)  # the data changed since the recording
    asked = len(model.requests)
    cap = cell(ip, f"-b openai --host {HOST} --tools mean_of --yes", "What is the mean price?")
    assert len(model.requests) == asked  # no request reached the model
    assert _answer(cap) == "The tool said: 2.5"  # the recorded answer
    shown = [o.data.get("text/markdown", "") for o in cap.outputs]
    assert "**⚠** mean\\_of(column='price') returned something else than when recorded" in shown
    assert "→ <em>(returned something else than when recorded)</em>" in shown[-2]
    assert ">3.0</pre>" in shown[-2]  # the call shown is the one run now

    _table(ip, 2.5)  # the data as recorded: nothing to say
    cap = cell(ip, f"-b openai --host {HOST} --tools mean_of --yes", "What is the mean price?")
    shown = [o.data.get("text/markdown", "") for o in cap.outputs]
    assert not [s for s in shown if "something else" in s]
    assert shown[-1].startswith('<details class="lollms-tools"><summary>Tool calls: 1</summary>')


def test_a_changed_result_is_told_in_a_terminal_too(ip, tmp_path):  # noqa: F811
    path = tmp_path / "tools.replay.jsonl"
    _table(ip, 2.5)
    _record(ip, path, Model())
    cell(ip, f"replay {path} --speed 0")
    _table(ip, 9.0)
    ip.lollms.stream_to = "stdout"
    cap = cell(ip, f"-b openai --host {HOST} --tools mean_of --yes", "What is the mean price?")
    assert cap.stdout == "lollms: mean_of(column='price') → 9.0\nThe tool said: 2.5\n"
    assert cap.stderr == "lollms: mean_of(column='price') returned something else than when recorded\n"


def test_requests_match_whatever_their_tool_results_hold_and_nothing_else() -> None:
    def key(result: str, question: str = "q") -> dict[str, Any]:
        messages = [{"role": "user", "content": question},
                    {"role": "assistant", "content": "", "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "c", "content": result}]
        return {"method": "POST", "path": "/v1/chat/completions", "body": {"messages": messages}}

    assert canonical(key("1")) == canonical(key("2"))
    assert canonical(key("1")) != canonical(key("1", question="another"))
    assert canonical({"local": key("1")["body"]}) == canonical({"local": key("2")["body"]})


def test_the_embedded_models_calls_are_recorded_and_replayed(ip, tmp_path, monkeypatch):  # noqa: F811
    from lollms_magics.bindings.llamacpp import LlamaCppBinding
    from lollms_magics.schema import ToolCall

    require_embedded_model()
    ran: list[str] = []

    def scripted(self: Any, path: Any, request: Any, response: Any) -> Any:
        # Stands in for the model at the binding's own seam; the tape's seam (run_local) is above it.
        ran.append(request.messages[-1].role)
        last = request.messages[-1]
        if last.role == "tool":
            yield f"The tool said: {last.content}"
        else:
            response.tool_calls.append(ToolCall.parse("call_0", "mean_of", '{"column": "price"}'))

    monkeypatch.setattr(LlamaCppBinding, "_run", scripted)
    path = tmp_path / "tools.replay.jsonl"
    _table(ip, 2.5)
    cell(ip, f"record {path}")
    recorded = cell(ip, "-b llamacpp --tools mean_of --yes", "What is the mean price?")
    cell(ip, "record off")
    assert _answer(recorded) == "The tool said: 2.5" and ran == ["user", "tool"]
    first = json.loads(path.read_text().splitlines()[1])
    assert first["tool_calls"][0]["function"] == {"name": "mean_of", "arguments": '{"column": "price"}'}

    cell(ip, f"replay {path} --speed 0")
    _table(ip, 7.0)
    cap = cell(ip, "-b llamacpp --tools mean_of --yes", "What is the mean price?")
    assert ran == ["user", "tool"]  # the model was not asked again
    assert _answer(cap) == "The tool said: 2.5"
    shown = [o.data.get("text/markdown", "") for o in cap.outputs]
    assert "**⚠** mean\\_of(column='price') returned something else than when recorded" in shown


def test_an_ollama_tools_cell_replays_the_same_way(ip, tmp_path, ollama_server):  # noqa: F811
    ollama_server.tool_script = [[("mean_of", {"column": "price"})]]
    path = tmp_path / "tools.replay.jsonl"
    line = f"-b ollama --host {ollama_server.url} --tools mean_of --yes"
    _table(ip, 2.5)
    cell(ip, f"record {path}")
    recorded = cell(ip, line, "What is the mean price?")
    cell(ip, "record off")
    assert _answer(recorded) == "Results: 2.5"
    cell(ip, f"replay {path} --speed 0")
    _table(ip, 6.5)
    ollama_server.stop()  # the replay needs no server
    cap = cell(ip, line, "What is the mean price?")
    assert _answer(cap) == "Results: 2.5"
    shown = [o.data.get("text/markdown", "") for o in cap.outputs]
    assert "**⚠** mean\\_of(column='price') returned something else than when recorded" in shown
