"""Session.ask(tools=...): the loop, on OpenAI-compatible servers and Ollama, streamed and whole.

The loopback servers answer with the calls of their ``tool_script`` (as the
real servers put them on the wire, ``tests/servers/tools.py``), then with the
results the tools sent back (``"Results: a | b"``): what the answer says is
what the loop really sent.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

import pytest

from lollms_magics.core.session import Session
from lollms_magics.core.tools import ToolEvent, tool
from lollms_magics.errors import InvalidOptionError, UnsupportedFeatureError

SECRET = "sk-tools-0123456789abcdef"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LOLLMS_API_KEY", "LOLLMS_MAGICS_BINDING"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["openai-stream", "openai-whole", "ollama-stream", "ollama-whole"])
def backend(request: pytest.FixtureRequest) -> tuple[Any, Session, bool, str]:
    """(server, session, stream, protocol) for each protocol, streamed and whole."""
    protocol, mode = request.param.split("-")
    server = request.getfixturevalue(f"{protocol}_server")
    return server, Session(protocol, model="test-model", host=server.url), mode == "stream", protocol


def chats(server: Any, protocol: str) -> list[Any]:
    return server.requests_to("/v1/chat/completions" if protocol == "openai" else "/api/chat")


@tool(safe=True)
def add(a: int, b: int) -> int:
    """Add two whole numbers."""
    return a + b


@tool(safe=True)
def shout(text: str, mark: Literal["!", "?"] = "!") -> str:
    """Say ``text`` louder."""
    return text.upper() + mark


def test_parallel_calls_run_in_order_and_their_results_go_back(backend: Any) -> None:
    server, session, stream, protocol = backend
    server.tool_script = [[("add", {"a": 2, "b": 3}), ("shout", {"text": "hé"})]]
    events: list[tuple[str, str]] = []

    def hear(event: ToolEvent) -> None:
        events.append((event.kind, event.run.call.name))

    response = session.ask("Compute and shout.", tools=[add, shout], stream=stream, on_tool=hear)
    assert response.text == "Results: 5 | HÉ!"
    assert response.done and not response.incomplete
    assert [(r.call.name, r.result, r.approved, r.refused) for r in response.tool_runs] == [
        ("add", "5", True, None), ("shout", "HÉ!", True, None)
    ]
    assert events == [("start", "add"), ("end", "add"), ("start", "shout"), ("end", "shout")]
    first, second = (r.json for r in chats(server, protocol))
    assert [t["function"]["name"] for t in first["tools"]] == ["add", "shout"]
    assert first["tools"][1]["function"]["parameters"]["properties"]["mark"] == {
        "enum": ["!", "?"], "type": "string", "default": "!"
    }
    asked, *answers = second["messages"][-3:]
    assert [c["function"]["name"] for c in asked["tool_calls"]] == ["add", "shout"]
    assert [a["content"] for a in answers] == ["5", "HÉ!"]
    if protocol == "openai":  # each result answers its call by id
        assert [a["tool_call_id"] for a in answers] == [c["id"] for c in asked["tool_calls"]]
    else:  # Ollama's results name their tool; the calls keep their arguments as objects
        assert [a["tool_name"] for a in answers] == ["add", "shout"]
        assert asked["tool_calls"][0]["function"]["arguments"] == {"a": 2, "b": 3}
    # The conversation keeps the exchange: the next question, without tools, reads the calls as a note.
    assert session.ask("And then?", stream=stream).text == "Echo: And then?"
    noted = "(called add(a=2, b=3) → 5)\n(called shout(text='hé') → HÉ!)\n\nResults: 5 | HÉ!"
    assert any(m.get("content") == noted for m in chats(server, protocol)[-1].json["messages"])


def test_unknown_tools_and_bad_arguments_are_refused_and_reported(backend: Any) -> None:
    server, session, stream, _protocol = backend
    ran: list[Any] = []

    @tool(safe=True)
    def square(n: int) -> int:
        """Square a number."""
        ran.append(n)
        return n * n

    server.tool_script = [[("cube", {"n": 2}), ("square", {"n": "two"}), ("square", {"n": 3, "extra": 1}),
                           ("square", {"n": 4})]]
    response = session.ask("Squares?", tools=[square], stream=stream)
    text = response.text
    runs = response.tool_runs
    assert ran == [4]  # only the valid call ran
    assert runs[0].refused == "there is no tool named 'cube' (the tools are: square)"
    assert runs[1].refused == "invalid arguments at n: 'two' is not of type 'integer'"
    assert runs[2].refused is not None and "'extra' was unexpected" in runs[2].refused
    assert [r.approved for r in runs] == [False, False, False, True]
    parts = text.removeprefix("Results: ").split(" | ")
    assert parts[0] == "Error: this call was refused: there is no tool named 'cube' (the tools are: square)"
    assert parts[1].startswith("Error: this call was refused: invalid arguments at n:")
    assert parts[3] == "16"


def test_arguments_that_are_not_json_are_refused(openai_server: Any) -> None:
    openai_server.tool_script = [[("add", '{"a": 1, "b":')]]
    response = Session("openai", model="test-model", host=openai_server.url).ask("Add.", tools=[add])
    assert response.text == (
        "Results: Error: this call was refused: its arguments are not a JSON object: '{\"a\": 1, \"b\":'"
    )
    assert response.tool_runs[0].refused is not None and not response.tool_runs[0].approved


def test_a_raised_exception_is_the_tools_error_not_the_cells(backend: Any) -> None:
    server, session, stream, _protocol = backend

    @tool(safe=True)
    def lookup(planet: str) -> str:
        """Facts about a planet."""
        raise LookupError(f"no data for {planet}")

    server.tool_script = [[("lookup", {"planet": "Mars"})]]
    response = session.ask("Mars?", tools=[lookup], stream=stream)
    assert response.text == "Results: Error: LookupError: no data for Mars"
    assert response.done and response.error is None
    assert response.tool_runs[0].error == "LookupError: no data for Mars" and response.tool_runs[0].approved


def test_unsafe_tools_run_only_when_approved(openai_server: Any) -> None:
    session = Session("openai", model="test-model", host=openai_server.url)
    deleted: list[str] = []

    def delete(path: str) -> str:
        """Delete a file."""
        deleted.append(path)
        return "deleted"

    openai_server.tool_script = [[("delete", {"path": "/tmp/x"})]]
    refused = session.ask("Clean up.", tools=[delete]).text
    assert deleted == []
    assert refused == ("Results: Error: this call was refused: delete is not marked safe and calls were "
                       "not approved (approve=, --yes, or @tool(safe=True))")
    asked: list[Any] = []
    no = session.ask("Clean up.", tools=[delete], approve=lambda call: asked.append(call) or False)
    assert no.text == "Results: Error: this call was refused: the user did not approve this call"
    assert deleted == [] and [(c.name, c.arguments) for c in asked] == [("delete", {"path": "/tmp/x"})]
    yes = session.ask("Clean up.", tools=[delete], approve=lambda call: True)
    assert yes.text == "Results: deleted" and deleted == ["/tmp/x"]
    assert session.ask("Clean up.", tools=[delete], approve="yes").text == "Results: deleted"
    assert deleted == ["/tmp/x", "/tmp/x"]
    with pytest.raises(InvalidOptionError):
        session.ask("Clean up.", tools=[delete], approve="always")


def test_keys_in_arguments_and_results_are_never_sent(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, session, stream, protocol = backend
    monkeypatch.setenv("MY_SERVICE_TOKEN", SECRET)
    ran: list[str] = []

    @tool(safe=True)
    def fetch(url: str) -> str:
        """Fetch a URL."""
        ran.append(url)
        return f"token={SECRET}" if url == "env" else "page"

    server.tool_script = [[("fetch", {"url": f"https://x.org/?t={SECRET}"}), ("fetch", {"url": "env"})]]
    response = session.ask("Fetch.", tools=[fetch], stream=stream)
    text = response.text
    assert ran == ["env"]
    first, second = response.tool_runs
    assert first.refused == "its arguments hold an API key; it was not run"
    assert SECRET not in first.call.raw and SECRET not in str(first.call.arguments)
    assert second.result is None and second.error == "the result holds an API key, so it was not sent"
    assert text == (
        "Results: Error: this call was refused: its arguments hold an API key; it was not run"
        " | Error: the result holds an API key, so it was not sent"
    )
    # The call itself came from the server (the model), so only what we send back matters.
    assert SECRET not in str(chats(server, protocol)[-1].json["messages"][-2:])


def test_max_rounds_then_the_model_is_asked_to_answer(backend: Any) -> None:
    server, session, stream, protocol = backend
    server.tool_script = [[("add", {"a": n, "b": n})] for n in range(1, 6)]
    response = session.ask("Keep adding.", tools=[add], stream=stream, max_rounds=2)
    assert response.text == "Results: 2 | 4"
    assert [r.result for r in response.tool_runs] == ["2", "4"]
    sent = [r.json for r in chats(server, protocol)]
    assert len(sent) == 3
    if protocol == "openai":
        assert [b.get("tool_choice") for b in sent] == ["auto", "auto", "none"]
    else:  # Ollama has no tool_choice: the last round goes without the tools
        assert ["tools" in b for b in sent] == [True, True, False]


def test_calls_asked_past_the_last_round_are_not_run(openai_server: Any) -> None:
    # A server that ignores tool_choice "none" still asks: the calls are listed, not run.
    openai_server.tool_script = [[("add", {"a": 1, "b": 1})]] * 3
    original = openai_server.chat

    def ignoring_none(ex: Any) -> None:
        ex.json.pop("tool_choice", None)
        original(ex)

    openai_server.route("POST", "/v1/chat/completions", ignoring_none)
    response = Session("openai", model="test-model", host=openai_server.url).ask(
        "Add.", tools=[add], max_rounds=1
    )
    assert response.text == ""
    runs = [(r.result, r.refused) for r in response.tool_runs]
    assert runs == [("2", None), (None, "no rounds of calls left")]
    assert "after 1 round(s) of tools; they were not run" in " ".join(response.notes)


def test_stop_during_a_call_ends_the_loop(backend: Any) -> None:
    server, session, stream, protocol = backend
    started = threading.Event()

    @tool(safe=True)
    def crunch(n: int) -> int:
        """A long computation."""
        started.set()
        total = 0
        while True:  # pure Python: Stop interrupts it at its next line
            total += n
            time.sleep(0.001)

    server.tool_script = [[("crunch", {"n": 1}), ("add", {"a": 1, "b": 2})]]
    response = session.ask("Crunch.", tools=[crunch, add], stream=stream)
    threading.Thread(target=lambda: started.wait(30) and response.cancel(), daemon=True).start()
    began = time.monotonic()
    pieces = list(response)
    assert time.monotonic() - began < 20
    assert pieces == [] and response.interrupted and response.finish_reason == "cancelled"
    assert not response.done
    assert [(r.call.name, r.stopped, r.error) for r in response.tool_runs] == [
        ("crunch", True, "stopped by the user")
    ]
    assert len(chats(server, protocol)) == 1  # the second call never ran, nothing more was asked


def test_stop_between_calls_and_ctrl_c_inside_one(openai_server: Any) -> None:
    session = Session("openai", model="test-model", host=openai_server.url)
    openai_server.tool_script = [[("add", {"a": 1, "b": 2}), ("shout", {"text": "no"})]]
    holder: list[Any] = []

    def stop_after_first(event: ToolEvent) -> None:
        if event.kind == "end":
            holder[0].cancel()

    holder.append(session.ask("Go.", tools=[add, shout], on_tool=stop_after_first))
    assert holder[0].text == "" and holder[0].interrupted
    assert [r.call.name for r in holder[0].tool_runs] == ["add"]

    @tool(safe=True)
    def interrupted() -> str:
        """Pressed Ctrl-C."""
        raise KeyboardInterrupt

    openai_server.tool_script = [[("interrupted", {})]]
    response = session.ask("Go.", tools=[interrupted])
    with pytest.raises(KeyboardInterrupt):
        response.text  # noqa: B018
    assert response.interrupted and response.tool_runs[0].stopped
    assert len(openai_server.requests_to("/v1/chat/completions")) == 2


def test_results_are_trimmed_to_the_budget(openai_server: Any) -> None:
    @tool(safe=True)
    def dump() -> str:
        """Everything."""
        return "x" * 10_000

    openai_server.tool_script = [[("dump", {})]]
    response = Session("openai", model="test-model", host=openai_server.url).ask("Dump.", tools=[dump])
    assert response.text.startswith("Results: " + "x" * 4000)
    sent = openai_server.requests_to("/v1/chat/completions")[-1].json["messages"][-1]["content"]
    assert sent.startswith("x" * 4000) and sent[4000:].startswith("\n[... 6000 more characters cut")
    assert response.tool_runs[0].trimmed


def test_the_legacy_webui_says_it_has_no_tool_api(lollms_webui_server: Any) -> None:
    session = Session("lollms", host=lollms_webui_server.url)
    with pytest.raises(UnsupportedFeatureError) as info:
        session.ask("Hi", tools=[add])
    assert str(info.value).startswith("lollms-webui at ") and "no tool-calling API" in str(info.value)
    assert "\n" not in str(info.value)
    assert not lollms_webui_server.requests_to("/lollms_generate")


def test_the_new_lollms_server_takes_tools(lollms_server: Any) -> None:
    from tests.servers import LOLLMS_KEY

    lollms_server.tool_script = [[("add", {"a": 20, "b": 22})]]
    session = Session("lollms", model="ollama/test-model", host=lollms_server.url)
    session.keys.set("lollms", LOLLMS_KEY)
    assert session.ask("Add.", tools=[add]).text == "Results: 42"


def test_a_server_that_cannot_stream_calls_is_asked_whole(openai_server: Any) -> None:
    openai_server.stream_calls = False  # llama-cpp-python's server with chatml-function-calling
    openai_server.tool_script = [[("add", {"a": 1, "b": 2})]]
    session = Session("openai", model="test-model", host=openai_server.url)
    response = session.ask("Add.", tools=[add])
    assert response.text == "Results: 3" and response.done
    assert "asked again without streaming (remembered for this server)" in " ".join(response.notes)
    def streamed() -> list[bool]:
        return [r.json["stream"] for r in openai_server.requests_to("/v1/chat/completions")]

    assert streamed() == [True, False, False]
    openai_server.reset()
    assert session.ask("Add.", tools=[add]).text == "Results: 3"
    assert streamed() == [False, False]
