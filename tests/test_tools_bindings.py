"""The bindings' side of tools, at httpx.MockTransport: what is sent, and the calls read from odd wires."""

from __future__ import annotations

import json
from typing import Any

import httpx

from lollms_magics.bindings.ollama import OllamaBinding
from lollms_magics.bindings.openai import OpenAIBinding
from lollms_magics.schema import ToolCall

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]


def sse(*events: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def recording(body: bytes, content_type: str, seen: list[Any]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, content=body, headers={"content-type": content_type})

    return httpx.MockTransport(handle)


def test_openai_calls_whole_in_one_delta_interleaved_and_with_reasoning() -> None:
    body = sse(
        chunk({"role": "assistant", "reasoning_content": "I should call f."}),
        # vLLM-style: the first call whole in one delta
        chunk({"tool_calls": [{"index": 0, "id": "a", "type": "function",
                               "function": {"name": "f", "arguments": '{"x": 1}'}}]}),
        # the second call's head, then pieces of it interleaved with nothing for index 0
        chunk({"tool_calls": [{"index": 1, "id": "b", "type": "function", "function": {"name": "f"}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": '{"x"'}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"name": "f", "arguments": ": 2}"}}]}),
        chunk({}, "tool_calls"),
    )
    seen: list[Any] = []
    transport = recording(body, "text/event-stream", seen)
    binding = OpenAIBinding(host="http://local:1/v1", model="m", transport=transport)
    response = binding.generate("go", tools=TOOLS, tool_choice="required")
    assert response.text == "" and response.reasoning == "I should call f."
    assert response.tool_calls == [
        ToolCall("a", "f", {"x": 1}, '{"x": 1}'), ToolCall("b", "f", {"x": 2}, '{"x": 2}')
    ]
    assert response.finish_reason == "tool_calls" and response.done
    assert seen[0]["tools"] == TOOLS and seen[0]["tool_choice"] == "required"


def test_openai_messages_with_calls_and_results_on_the_wire() -> None:
    seen: list[Any] = []
    body = json.dumps({"choices": [{"message": {"content": "done"}, "finish_reason": "stop"}]}).encode()
    call = ToolCall("c1", "f", {"x": 1}, '{"x":1}')
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "1"},
    ]
    for host, named in (("http://local:1/v1", True), ("https://api.openai.com/v1", False)):
        binding = OpenAIBinding(host=host, model="m", api_key="k",
                                transport=recording(body, "application/json", seen))
        assert binding.generate(messages, stream=False, tools=TOOLS).text == "done"
        sent = seen[-1]["messages"]
        assert sent[1] == {"role": "assistant", "content": "",
                           "tool_calls": [{"id": "c1", "type": "function",
                                           "function": {"name": "f", "arguments": '{"x":1}'}}]}
        result = {"role": "tool", "content": "1", "tool_call_id": "c1"}
        assert sent[2] == result | ({"name": "f"} if named else {})


def test_ollama_calls_without_ids_and_the_generate_api_switches_to_chat() -> None:
    def asks(x: int) -> dict[str, Any]:  # Ollama before 0.12: no id
        calls = [{"function": {"name": "f", "arguments": {"x": x}}}]
        message = {"role": "assistant", "content": "", "tool_calls": calls}
        return {"model": "m", "message": message, "done": False}

    lines = [
        asks(1),
        asks(2),
        {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"},
    ]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    seen: list[Any] = []
    paths: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        seen.append(json.loads(request.content))
        return httpx.Response(200, content=body, headers={"content-type": "application/x-ndjson"})

    transport = httpx.MockTransport(handle)
    binding = OllamaBinding(host="http://local:1", model="m", api="generate", transport=transport)
    response = binding.generate("go", tools=TOOLS)
    assert response.text == ""
    assert [(c.id, c.arguments) for c in response.tool_calls] == [("call_0", {"x": 1}), ("call_1", {"x": 2})]
    assert paths == ["/api/chat"] and seen[0]["tools"] == TOOLS
    # tool_choice "none": Ollama has no such field, so the tools are not sent.
    assert binding.generate("go", tools=TOOLS, tool_choice="none").text == ""
    assert "tools" not in seen[-1]
