"""``%%lollms --tools f,g`` in a shell: approval asked, given, refused, skipped; calls shown, folded in place.

The model is an OpenAI-compatible server behind ``httpx.MockTransport``: it
asks for a call of ``mean_of`` (streamed as OpenAI streams ``tool_calls``
deltas) until the request carries a tool result, then answers with what
that result said, so what reached the model is visible in the answer.
"""

from __future__ import annotations

import builtins
import json
from typing import Any

import httpx
import pytest
from IPython.core.error import StdinNotImplementedError, UsageError

from lollms_magics.core.tools import tool
from tests.test_magics import cell, final, ip  # noqa: F401  (ip is the fixture)

HOST = "http://tools.test"


def _sse(events: list[dict[str, Any]]) -> httpx.Response:
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "model": "tool-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class Model:
    """Asks for ``name(arguments)`` once, then answers from the tool message it is sent."""

    def __init__(self, name: str = "mean_of", arguments: str = '{"column": "price"}') -> None:
        self.name, self.arguments = name, arguments
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # the binding asks which models there are
            models = [{"id": "tool-model", "object": "model"}]
            return httpx.Response(200, json={"object": "list", "data": models})
        body = json.loads(request.content)
        self.requests.append(body)
        last = body["messages"][-1]
        if last["role"] == "tool":
            return _sse([_chunk({"role": "assistant", "content": "The tool said: "}),
                         _chunk({"content": last["content"]}), _chunk({}, "stop")])
        call = {"index": 0, "id": "call_1", "type": "function",
                "function": {"name": self.name, "arguments": ""}}
        half = len(self.arguments) // 2  # the arguments arrive in two deltas, as OpenAI sends them
        return _sse([
            _chunk({"role": "assistant", "tool_calls": [call]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": self.arguments[:half]}}]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": self.arguments[half:]}}]}),
            _chunk({}, "tool_calls"),
        ])


@pytest.fixture
def model(ip):  # noqa: F811
    served = Model()
    ip.lollms.session.binding_config["transport"] = httpx.MockTransport(served)
    return served


@pytest.fixture
def prices(ip):  # noqa: F811
    ran: list[str] = []

    def mean_of(column: str) -> float:
        """The mean of a column of the prices table."""
        ran.append(column)
        return {"price": 2.5}[column]

    ip.user_ns["mean_of"] = mean_of
    return ran


def _answer(cap: Any) -> str:
    answers = [o.data["text/markdown"] for o in cap.outputs
               if "lollms_magics" in (o.metadata or {}) and "text/markdown" in o.data]
    assert answers, f"no final answer; outputs: {[o.data for o in cap.outputs]}"
    return str(answers[-1])


def _asked(monkeypatch: pytest.MonkeyPatch, reply: str) -> list[str]:
    prompts: list[str] = []

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        return reply

    monkeypatch.setattr(builtins, "input", fake_input)
    return prompts


def test_a_call_approved_at_the_prompt_runs_and_its_result_reaches_the_model(ip, model, prices, monkeypatch):  # noqa: F811
    prompts = _asked(monkeypatch, "y")
    cap = cell(ip, f"-b openai --host {HOST} --tools mean_of", "What is the mean price?")
    assert prompts == ["run mean_of(column='price')? [y/N] "]
    assert prices == ["price"]
    assert _answer(cap) == "The tool said: 2.5"
    tool_message = model.requests[-1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "2.5"
    assert model.requests[0]["tools"][0]["function"]["name"] == "mean_of"


def test_the_calls_show_as_they_run_then_collapse_where_they_ran(ip, model, prices, monkeypatch):  # noqa: F811
    _asked(monkeypatch, "yes")
    cap = cell(ip, f"-b openai --host {HOST} --tools mean_of", "What is the mean price?")
    texts = [o.data.get("text/markdown", o.data.get("text/plain", "")) for o in cap.outputs]
    running = texts.index("- `mean_of(column='price')` … running")
    assert not cap.outputs[running].update  # the one display of the calls, made where they ran
    assert texts[running + 1] == "- `mean_of(column='price')` → 2.5"  # the same display, updated
    assert cap.outputs[running + 1].update
    answer_at = max(i for i, o in enumerate(cap.outputs) if "lollms_magics" in (o.metadata or {}))
    assert running < answer_at  # above the answer
    collapsed = cap.outputs[-1]
    assert collapsed.update  # the live list itself became the collapsed one: no other output, none empty
    summary = '<details class="lollms-tools"><summary>Tool calls: 1</summary>'
    assert collapsed.data["text/markdown"].startswith(summary)
    assert "<code>mean_of(column=&#x27;price&#x27;)</code> →" in collapsed.data["text/markdown"]
    assert ">2.5</pre>" in collapsed.data["text/markdown"]
    assert collapsed.data["text/plain"] == "mean_of(column='price') → 2.5"
    assert not any(o.data == {"text/plain": ""} for o in cap.outputs)


def test_a_refused_call_does_not_run_and_the_model_is_told(ip, model, prices, monkeypatch):  # noqa: F811
    _asked(monkeypatch, "n")
    cap = cell(ip, f"-b openai --host {HOST} --tools mean_of", "What is the mean price?")
    assert prices == []
    sent = model.requests[-1]["messages"][-1]
    assert sent["role"] == "tool" and "refused" in sent["content"] and "did not approve" in sent["content"]
    assert _answer(cap).startswith("The tool said: Error: this call was refused")
    assert "Tool calls: 1, refused: 1" in cap.outputs[-1].data["text/markdown"]


def test_yes_runs_every_call_without_asking(ip, model, prices, monkeypatch):  # noqa: F811
    prompts = _asked(monkeypatch, "n")
    cap = cell(ip, f"-b openai --host {HOST} --tools mean_of --yes", "What is the mean price?")
    assert prompts == [] and prices == ["price"]
    assert _answer(cap) == "The tool said: 2.5"


def test_a_function_marked_safe_runs_without_asking(ip, model, monkeypatch):  # noqa: F811
    prompts = _asked(monkeypatch, "n")

    @tool(safe=True)
    def mean_of(column: str) -> float:
        """The mean of a column."""
        return 4.0

    ip.user_ns["mean_of"] = mean_of
    cap = cell(ip, f"-b openai --host {HOST} --tools mean_of", "What is the mean price?")
    assert prompts == []
    assert _answer(cap) == "The tool said: 4.0"


def test_where_nothing_can_ask_the_call_is_refused_and_the_cell_says_how(ip, model, prices, monkeypatch):  # noqa: F811
    def no_stdin(prompt: str = "") -> str:
        raise StdinNotImplementedError("this frontend does not support input requests")

    monkeypatch.setattr(builtins, "input", no_stdin)
    cap = cell(ip, f"-b openai --host {HOST} --tools mean_of", "What is the mean price?")
    assert prices == []
    last = cap.outputs[-1].data["text/markdown"]
    assert "mean\\_of(column='price') not run: nothing here can ask for approval" in last
    assert "--yes" in last


def test_a_terminal_gets_one_line_per_call(ip, model, prices, monkeypatch):  # noqa: F811
    _asked(monkeypatch, "y")
    ip.lollms.stream_to = "stdout"
    cap = cell(ip, f"-b openai --host {HOST} --tools mean_of", "What is the mean price?")
    assert cap.stdout == "lollms: mean_of(column='price') → 2.5\nThe tool said: 2.5\n"


def test_a_name_that_is_no_function_of_the_notebook_is_a_usage_error(ip, model, prices):  # noqa: F811
    with pytest.raises(UsageError, match="--tools median_of: no function of that name in the notebook"):
        cell(ip, f"-b openai --host {HOST} --tools mean_of,median_of", "What is the mean price?")
    ip.user_ns["table"] = [1, 2]
    with pytest.raises(UsageError, match="--tools table: that is a list, not a function"):
        cell(ip, f"-b openai --host {HOST} --tools table", "What is the mean price?")
    with pytest.raises(UsageError, match="--yes and --max-rounds go with --tools"):
        cell(ip, f"-b openai --host {HOST} --yes", "What is the mean price?")
    assert model.requests == []


def test_max_rounds_zero_lets_no_call_run(ip, model, prices, monkeypatch):  # noqa: F811
    _asked(monkeypatch, "y")
    cell(ip, f"-b openai --host {HOST} --tools mean_of --max-rounds 0", "What is the mean price?")
    assert prices == []
    assert model.requests[0]["tool_choice"] == "none"


def test_an_interrupt_at_the_prompt_stops_the_cell_and_runs_nothing(ip, model, prices, monkeypatch):  # noqa: F811
    def interrupted(prompt: str = "") -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(builtins, "input", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cell(ip, f"-b openai --host {HOST} --tools mean_of", "What is the mean price?")
    assert prices == [] and len(model.requests) == 1  # the model was not asked again


def test_the_prompt_shows_the_arguments_whole_and_the_list_shortens_them(ip, prices, monkeypatch):  # noqa: F811
    column = "price; " + "and then something else " * 4
    served = Model(arguments=json.dumps({"column": column}))
    ip.lollms.session.binding_config["transport"] = httpx.MockTransport(served)
    prompts = _asked(monkeypatch, "n")
    cap = cell(ip, f"-b openai --host {HOST} --tools mean_of", "What is the mean price?")
    assert prompts == [f"run mean_of(column={column!r})? [y/N] "]  # what is approved is seen whole
    listed = cap.outputs[-1].data["text/markdown"]
    assert "<code>mean_of(column=&#x27;price; and then something else and the…)</code>" in listed
