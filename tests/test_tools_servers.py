"""The loopback servers answer tools as OpenAI-compatible servers and Ollama do: proved with their SDKs.

The official clients parse and assemble what the servers send (the openai
SDK's stream helper joins the argument deltas by index; the ollama SDK's
pydantic types check each call), so a wire the SDKs read the same way as the
real servers' is what the bindings are tested against.
"""

from __future__ import annotations

import json

import ollama
import openai
import pytest

from tests.servers import LOLLMS_KEY

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "clock",
        "description": "The time in a zone.",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
}
SCRIPT = [[("weather", {"city": "Paris, été"}), ("clock", {"zone": "UTC"})]]
ASK = [{"role": "user", "content": "Weather and time?"}]


@pytest.fixture(params=["openai", "lollms"])
def oai(request):
    if request.param == "openai":
        return request.getfixturevalue("openai_server"), "test-model", "sk-anything"
    return request.getfixturevalue("lollms_server"), "ollama/test-model", LOLLMS_KEY


def sdk(srv, key):
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0, timeout=5.0)


def test_openai_streamed_parallel_calls_assemble_in_the_sdk(oai):
    srv, model, key = oai
    srv.tool_script = SCRIPT
    with sdk(srv, key).chat.completions.stream(model=model, messages=ASK, tools=[WEATHER, CLOCK]) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["weather", "clock"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris, été"}, {"zone": "UTC"}]
    assert all(c.id.startswith("call_") for c in calls) and calls[0].id != calls[1].id
    assert events.count("tool_calls.function.arguments.done") == 2  # the SDK saw each call end
    assert srv.last_request.json["tools"] == [WEATHER, CLOCK]


def test_openai_whole_calls_then_results_answer(oai):
    srv, model, key = oai
    srv.tool_script = SCRIPT
    client = sdk(srv, key)
    first = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER, CLOCK])
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls" and message.content is None
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris, été"}
    follow = [*ASK, message.model_dump(exclude_none=True)] + [
        {"role": "tool", "tool_call_id": c.id, "content": f"result of {c.function.name}"}
        for c in message.tool_calls
    ]
    second = client.chat.completions.create(model=model, messages=follow, tools=[WEATHER, CLOCK])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "Results: result of weather | result of clock"


def test_openai_refuses_tool_messages_that_answer_no_call(openai_server):
    client = sdk(openai_server, "k")
    stray = [*ASK, {"role": "tool", "tool_call_id": "call_nobody", "content": "x"}]
    with pytest.raises(openai.BadRequestError, match="preceeding message with 'tool_calls'"):
        client.chat.completions.create(model="test-model", messages=stray)
    unanswered = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "user", "content": "and?"},
    ]
    with pytest.raises(openai.BadRequestError, match="did not have response messages: call_a"):
        client.chat.completions.create(model="test-model", messages=unanswered)


def test_openai_tool_choice_none_answers_text(openai_server):
    openai_server.tool_script = SCRIPT
    r = sdk(openai_server, "k").chat.completions.create(
        model="test-model", messages=ASK, tools=[WEATHER], tool_choice="none"
    )
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].message.content == "Echo: Weather and time?"


@pytest.mark.parametrize("stream", [True, False])
def test_ollama_calls_read_by_the_sdk(ollama_server, stream):
    ollama_server.tool_script = SCRIPT
    client = ollama.Client(host=ollama_server.url, timeout=5.0)
    if stream:
        chunks = list(client.chat(model="test-model", messages=ASK, tools=[WEATHER, CLOCK], stream=True))
        calls = [c for chunk in chunks for c in chunk.message.tool_calls or []]
        assert chunks[-1].done and chunks[-1].done_reason == "stop"
        assert all(not chunk.done for chunk in chunks if chunk.message.tool_calls)
    else:
        reply = client.chat(model="test-model", messages=ASK, tools=[WEATHER, CLOCK])
        calls = list(reply.message.tool_calls or [])
        assert reply.done
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("weather", {"city": "Paris, été"}), ("clock", {"zone": "UTC"})
    ]
    raw = ollama_server.requests_to("/api/chat")[-1].json
    assert raw["tools"][0]["function"]["name"] == "weather"
    follow = [*ASK, {"role": "assistant", "content": "", "tool_calls": calls}] + [
        {"role": "tool", "tool_name": c.function.name, "content": f"{c.function.name} done"} for c in calls
    ]
    answer = client.chat(model="test-model", messages=follow, tools=[WEATHER, CLOCK])
    assert answer.message.content == "Results: weather done | clock done"
    assert answer.message.tool_calls is None
