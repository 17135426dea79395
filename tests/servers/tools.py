"""What the loopback servers answer when a request offers tools.

A server has no model to decide on calls: ``server.tool_script`` decides. It
is a list of rounds; the round of a request is the number of assistant
messages with ``tool_calls`` after its last user message. While the script
has a round for it (and ``tool_choice`` is not ``"none"``), the answer is that
round's calls: a list of ``(name, arguments)``, the arguments a dict or a
raw string (to send arguments that are not JSON). Past the script the answer
is text: ``"Results: "`` and the contents of the tool messages since the last
user message joined with ``" | "`` (what the tools sent back, for the tests to
read), or ``"Echo: "`` and the prompt when there are none.

The wire follows the servers' own code: OpenAI streams each call's ``id``,
``type`` and ``name`` once in the first delta of its ``index`` with empty
``arguments``, then the arguments in pieces (``openai/lib/streaming/chat``
assembles them that way), and finishes with ``"tool_calls"``; a whole answer
has ``message.tool_calls`` with ``content: null``. Ollama sends whole calls,
arguments as an object, ``function.index``, an ``id`` ``call_`` + eight
characters (``server/routes.go``: ``toolCallId``), in lines of their own
before the ``done`` line (``done_reason: "stop"``); a whole answer carries them
all.
"""

from __future__ import annotations

import json
import random
import string
from typing import Any

__all__ = ["ids_for", "openai_tool_problem", "planned_calls", "tool_text"]


def _since_user(messages: list[Any]) -> list[dict[str, Any]]:
    tail: list[dict[str, Any]] = []
    for m in reversed(messages or []):
        if not isinstance(m, dict):
            continue
        if m.get("role") == "user":
            break
        tail.append(m)
    return list(reversed(tail))


def planned_calls(server: Any, body: dict[str, Any]) -> list[tuple[str, Any]] | None:
    """The calls this request is answered with, or None for a text answer."""
    script = getattr(server, "tool_script", None)
    if not body.get("tools") or not script or body.get("tool_choice") == "none":
        return None
    round_ = sum(1 for m in _since_user(body.get("messages") or []) if m.get("tool_calls"))
    return list(script[round_]) if round_ < len(script) else None


def tool_text(messages: list[Any]) -> str | None:
    """The text answer after tool results: ``"Results: a | b"``; None when no tool answered."""
    results = [str(m.get("content") or "") for m in _since_user(messages) if m.get("role") == "tool"]
    return "Results: " + " | ".join(results) if results else None


def raw_arguments(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, separators=(",", ":"))


def ids_for(calls: list[tuple[str, Any]]) -> list[str]:
    """Call ids as OpenAI and Ollama make them (``call_`` and random characters)."""
    alphabet = string.ascii_lowercase + string.digits
    return ["call_" + "".join(random.choices(alphabet, k=8)) for _ in calls]


def openai_tool_problem(body: dict[str, Any]) -> tuple[str, str] | None:
    """OpenAI's refusals of a request's tools and tool messages: (message, param), or None."""
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "Invalid type for 'tools': expected an array.", "tools"
        for i, t in enumerate(tools):
            function = t.get("function") if isinstance(t, dict) else None
            if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(function, dict):
                return f"Missing required parameter: 'tools[{i}].function'.", f"tools[{i}].function"
            if not isinstance(function.get("name"), str):
                return f"Missing required parameter: 'tools[{i}].function.name'.", f"tools[{i}].function.name"
    messages = body.get("messages") or []
    waiting: list[str] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            continue
        if m.get("role") == "tool":
            if m.get("tool_call_id") not in waiting:
                return ("Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                        "message with 'tool_calls'.", f"messages.[{i}].role")
            waiting.remove(m["tool_call_id"])
            continue
        if waiting:
            return ("An assistant message with 'tool_calls' must be followed by tool messages responding "
                    f"to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                    f"{', '.join(waiting)}", "messages")
        for call in m.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
                return f"Invalid type for 'messages[{i}].tool_calls': arguments must be a string.", "messages"
            waiting.append(call.get("id"))
    if waiting:
        return ("An assistant message with 'tool_calls' must be followed by tool messages responding "
                f"to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                f"{', '.join(waiting)}", "messages")
    return None


def openai_call_deltas(
    calls: list[tuple[str, Any]], ids: list[str], whole: bool = False
) -> list[dict[str, Any]]:
    """The deltas of a streamed answer that asks for ``calls``, as OpenAI sends them.

    ``whole``: as the new LoLLMs server sends them (``backend/routers/services/openai_v1.py``:
    it parses the model's whole answer, then sends a role delta and one delta per call, each
    whole with its ``index``, pydantic's nulls included).
    """
    if whole:
        heads = [{"role": "assistant", "content": None, "tool_calls": None}]
        return heads + [
            {"role": None, "content": None, "tool_calls": [
                {"index": index, "id": call_id, "type": "function",
                 "function": {"name": name, "arguments": raw_arguments(arguments)}}]}
            for index, ((name, arguments), call_id) in enumerate(zip(calls, ids, strict=True))
        ]
    deltas: list[dict[str, Any]] = []
    for index, ((name, arguments), call_id) in enumerate(zip(calls, ids, strict=True)):
        function = {"name": name, "arguments": ""}
        head = {"index": index, "id": call_id, "type": "function", "function": function}
        if index == 0:
            deltas.append({"role": "assistant", "content": None, "tool_calls": [head], "refusal": None})
        else:
            deltas.append({"tool_calls": [head]})
        raw = raw_arguments(arguments)
        for start in range(0, len(raw), 5):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": raw[start:start + 5]}}]})
    return deltas


def openai_whole_calls(calls: list[tuple[str, Any]], ids: list[str]) -> list[dict[str, Any]]:
    return [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": raw_arguments(arguments)}}
        for (name, arguments), call_id in zip(calls, ids, strict=True)
    ]


def ollama_calls(calls: list[tuple[str, Any]], ids: list[str]) -> list[dict[str, Any]]:
    """Ollama's calls: arguments as an object (a raw string that is not JSON is sent as it is)."""
    out = []
    for index, ((name, arguments), call_id) in enumerate(zip(calls, ids, strict=True)):
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                pass
        out.append({"id": call_id, "function": {"index": index, "name": name, "arguments": arguments}})
    return out
