"""A tool cell's calls and results stay in the conversation: a follow-up sees what the functions returned.

On the loopback servers (``tests/servers/tools.py``: the server asks for the
calls of its ``tool_script``, then answers ``"Results: ..."`` from the tool
messages, or ``"Echo: <prompt>"``). A follow-up that offers tools gets the
steps as real messages (assistant ``tool_calls``, then ``"tool"`` messages),
checked by the OpenAI server as OpenAI checks them; any other request gets
them as a note in the answer, so no binding receives a role it cannot take.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lollms_magics.core.history import HISTORY_RESULTS, Conversation, Exchange
from lollms_magics.core.session import Session
from lollms_magics.core.tools import tool
from lollms_magics.schema import ToolCall
from tests.test_magics import cell, ip  # noqa: F401  (ip is the fixture)

SECRET = "sk-history-0123456789abcdef"
NOTED = "(called weather(city='Paris') → 22 C and sunny)\n\nResults: 22 C and sunny"  # the note in the answer


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LOLLMS_API_KEY", "LOLLMS_MAGICS_BINDING"):
        monkeypatch.delenv(name, raising=False)


@tool(safe=True)
def weather(city: str) -> str:
    """The weather in a city."""
    return {"Paris": "22 C and sunny", "Lyon": "18 C and rain"}[city]


def _chats(server: Any) -> list[dict[str, Any]]:
    return [r.json for r in server.requests_to("/v1/chat/completions")]


def _paris(server: Any, session: Session) -> str:
    """The tool cell: asks for weather(city='Paris'); returns the call's id."""
    server.tool_script = [[("weather", {"city": "Paris"})]]
    response = session.ask("Weather in Paris?", tools=[weather], key="cell-1")
    assert response.text == "Results: 22 C and sunny"
    server.tool_script = None  # the follow-up is answered with text
    return response.tool_runs[0].call.id


def test_a_follow_up_with_tools_sends_the_calls_and_results_as_messages(openai_server: Any) -> None:
    session = Session("openai", model="test-model", host=openai_server.url)
    call_id = _paris(openai_server, session)
    answer = session.ask("And Lyon?", tools=[weather], key="cell-2").text
    assert answer == "Echo: And Lyon?"  # the server took the messages (it refuses unanswered calls)
    body = _chats(openai_server)[-1]
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [{
            "id": call_id, "type": "function",
            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
        }]},
        {"role": "tool", "content": "22 C and sunny", "tool_call_id": call_id, "name": "weather"},
        {"role": "assistant", "content": "Results: 22 C and sunny"},
        {"role": "user", "content": "And Lyon?"},
    ]
    assert body["tools"][0]["function"]["name"] == "weather"


def test_a_follow_up_without_tools_reads_the_calls_as_a_note_in_the_answer(openai_server: Any) -> None:
    session = Session("openai", model="test-model", host=openai_server.url)
    _paris(openai_server, session)
    assert session.ask("Which city was warmer?", key="cell-2").text == "Echo: Which city was warmer?"
    body = _chats(openai_server)[-1]
    assert "tools" not in body
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": NOTED},
        {"role": "user", "content": "Which city was warmer?"},
    ]


def test_a_binding_without_a_tool_api_gets_the_note_and_no_tool_role(
    openai_server: Any, lollms_webui_server: Any
) -> None:
    session = Session("openai", model="test-model", host=openai_server.url)
    _paris(openai_server, session)
    assert session.ask("And tomorrow?", binding="lollms", host=lollms_webui_server.url, key="cell-2").text
    prompt = lollms_webui_server.requests_to("/lollms_generate")[-1].json["prompt"]
    assert prompt == (
        "!@>user: Weather in Paris?\n"
        "!@>assistant: (called weather(city='Paris') → 22 C and sunny)\n\nResults: 22 C and sunny\n"
        "!@>user: And tomorrow?\n!@>assistant:"
    )


def test_ollama_without_tools_gets_the_note_not_tool_messages(openai_server: Any, ollama_server: Any) -> None:
    session = Session("openai", model="test-model", host=openai_server.url)
    _paris(openai_server, session)
    assert session.ask("And tomorrow?", binding="ollama", host=ollama_server.url, key="cell-2").text
    messages = ollama_server.requests_to("/api/chat")[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"].startswith("(called weather(city='Paris') → 22 C and sunny)\n\n")
    assert not any("tool_calls" in m for m in messages)


def test_the_results_an_exchange_keeps_are_capped_and_the_cut_said(openai_server: Any) -> None:
    session = Session("openai", model="test-model", host=openai_server.url)

    @tool(safe=True)
    def page(n: int) -> str:
        """A page of a long text."""
        return str(n) * 1_500

    openai_server.tool_script = [[("page", {"n": 1}), ("page", {"n": 2})]]
    first = session.ask("Read pages 1 and 2.", tools=[page], key="cell-1")
    assert first.text == f"Results: {'1' * 1_500} | {'2' * 1_500}"  # the model got both whole
    openai_server.tool_script = None
    assert session.ask("Summarize them.", tools=[page], key="cell-2").text == "Echo: Summarize them."
    results = [m["content"] for m in _chats(openai_server)[-1]["messages"] if m["role"] == "tool"]
    assert results[0] == "1" * 1_500
    assert HISTORY_RESULTS == 2_000  # the second keeps the 500 characters left of the exchange's 2,000
    assert results[1] == "2" * 500 + (
        "\n[... 1000 more characters cut from the history: it keeps 2000 characters of tool results "
        "per exchange]"
    )


def test_an_exchange_left_out_of_the_window_takes_its_steps_with_it(openai_server: Any) -> None:
    # 600-token window, 150 kept for the answer: the tool cell (prompt, ~1,500-character
    # result, answer) cannot fit with the cell after it; that one alone can.
    session = Session("openai", model="test-model", host=openai_server.url, context_size=600)

    @tool(safe=True)
    def table() -> str:
        """The table."""
        return "row " * 375

    openai_server.tool_script = [[("table", {})]]
    assert session.ask("Read the table.", tools=[table], key="cell-1").text.startswith("Results: row row")
    openai_server.tool_script = None
    assert session.ask("Short question.", key="cell-2").text == "Echo: Short question."
    response = session.ask("Last question.", tools=[table], key="cell-3")
    assert response.text == "Echo: Last question."
    messages = _chats(openai_server)[-1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "Short question."
    assert "history cut: 1 earlier exchange(s) left out" in " ".join(response.notes)


def test_the_window_counts_the_steps_not_only_the_prompt_and_answer() -> None:
    conversation = Conversation()
    call = ToolCall("call_1", "table", {}, "{}")
    steps = [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "name": "table", "content": "x" * 900},
    ]
    conversation.record(Exchange("a", "Read it.", "Done.", steps=steps, reply="Done."), keep=10)
    # Prompt and answer alone are a few tokens; with the 900-character result they are over 300.
    for tools in (True, False):
        fitted = conversation.fit("b", "Next?", window=400, reserve=150, tools=tools)
        assert (fitted.kept, fitted.dropped) == (0, 1)
        fitted = conversation.fit("b", "Next?", window=600, reserve=150, tools=tools)
        assert fitted.kept == 1
    assert conversation.tokens() > 300


def test_nothing_the_history_keeps_holds_a_key(openai_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", SECRET)
    session = Session("openai", model="test-model", host=openai_server.url)

    @tool(safe=True)
    def fetch(url: str) -> str:
        """Fetch a URL."""
        return "page"

    openai_server.tool_script = [[("fetch", {"url": f"https://x.org/?t={SECRET}"})]]
    refused = session.ask("Fetch.", tools=[fetch], key="cell-1").text
    assert refused.startswith("Results: Error: this call was refused")
    openai_server.tool_script = None
    assert session.ask("Again?", tools=[fetch], key="cell-2").text == "Echo: Again?"
    assert session.ask("And?", key="cell-3").text == "Echo: And?"
    kept = session.history()[0]
    assert SECRET not in repr(kept.steps) and kept.steps[0]["tool_calls"][0].name == "fetch"
    for body in _chats(openai_server)[-2:]:
        assert SECRET not in json.dumps(body["messages"])
    with_tools = _chats(openai_server)[-2]["messages"]
    assert json.loads(with_tools[1]["tool_calls"][0]["function"]["arguments"])["url"].startswith("https://x.org/")


def test_history_and_exports_list_the_calls(openai_server: Any, tmp_path: Any) -> None:
    from lollms_magics.core.export import export_conversation

    session = Session("openai", model="test-model", host=openai_server.url)
    _paris(openai_server, session)
    path = tmp_path / "talk.json"
    export_conversation(session.history(), str(path), session.keys.redact)
    record = json.loads(path.read_text())["exchanges"][0]
    assert record["tools"] == [{"call": "weather(city='Paris')", "result": "22 C and sunny"}]
    export_conversation(session.history(), str(tmp_path / "talk.md"), session.keys.redact)
    markdown = (tmp_path / "talk.md").read_text()
    assert "*Tool calls:*\n\n- `weather(city='Paris')` → 22 C and sunny\n\nResults: 22 C and sunny" in (
        markdown
    )
    export_conversation(session.history(), str(tmp_path / "talk.ipynb"), session.keys.redact)
    outputs = json.loads((tmp_path / "talk.ipynb").read_text())["cells"][0]["outputs"]
    assert outputs[0]["data"]["text/markdown"] == "- `weather(city='Paris')` → 22 C and sunny"
    assert outputs[1]["data"]["text/markdown"] == "Results: 22 C and sunny"


def test_the_magic_follow_up_cell_sees_the_tool_cell(ip: Any, openai_server: Any, capsys: Any) -> None:  # noqa: F811
    def weather(city: str) -> str:  # as a notebook defines it: not marked safe, so --yes runs it
        """The weather in a city."""
        return {"Paris": "22 C and sunny"}[city]

    ip.user_ns["weather"] = weather
    openai_server.tool_script = [[("weather", {"city": "Paris"})]]
    host = f"-b openai --host {openai_server.url} -m test-model"
    cell(ip, f"{host} --tools weather --yes", "Weather in Paris?")
    openai_server.tool_script = None
    cell(ip, host, "Which was it?")
    body = _chats(openai_server)[-1]
    assert "tools" not in body
    assert body["messages"][-2:] == [
        {"role": "assistant", "content": NOTED},
        {"role": "user", "content": "Which was it?"},
    ]
    ip.run_line_magic("lollms", "history")
    shown = capsys.readouterr().out
    assert "    called weather(city='Paris') → 22 C and sunny\n" in shown


def test_the_request_shown_by_sent_names_the_calls_it_carried(openai_server: Any) -> None:
    from lollms_magics.core.sent import describe

    session = Session("openai", model="test-model", host=openai_server.url)
    _paris(openai_server, session)
    assert session.ask("And Lyon?", tools=[weather], key="cell-2").text == "Echo: And Lyon?"
    assert session.last_request is not None
    shown = describe(session.last_request, session.keys.redact)
    steps = "--- [2] assistant\n\ncalled weather(city='Paris')\n--- [3] tool (weather)\n22 C and sunny\n"
    assert steps in shown


def test_ollama_with_tools_gets_the_steps_as_its_own_tool_messages(ollama_server: Any) -> None:
    session = Session("ollama", model="test-model", host=ollama_server.url)
    ollama_server.tool_script = [[("weather", {"city": "Paris"})]]
    first = session.ask("Weather in Paris?", tools=[weather], key="cell-1")
    assert first.text == "Results: 22 C and sunny"
    ollama_server.tool_script = None
    assert session.ask("And Lyon?", tools=[weather], key="cell-2").text == "Echo: And Lyon?"
    messages = ollama_server.requests_to("/api/chat")[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "user"]
    asked, result = messages[1], messages[2]
    assert asked["tool_calls"][0]["function"]["name"] == "weather"
    assert asked["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}  # Ollama's objects
    assert (result["tool_name"], result["content"]) == ("weather", "22 C and sunny")
    assert result["tool_call_id"] == first.tool_runs[0].call.id
