"""Tool results on tape: matched without their content, compared when replayed.

A tool loop sends the model what the notebook's functions returned, as
``"tool"`` messages (OpenAI's, Ollama's and the embedded model's chat
shape). On replay the functions run again in the kernel, and the data they
read may have changed since the recording. So a request is matched with the
content of its tool messages left out (:func:`matching_form`): the model's
side still comes from the file. The content stays in the file, and
:func:`changed_results` says which of the results a replayed request
carries differ from the recorded ones, so the cell can say so instead of
replaying over changed data in silence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["call_label", "changed_results", "matching_form"]

_LABEL_VALUE = 40  # characters of one argument's value shown in a label


def _messages_of(key: Any) -> tuple[str, list[Any]] | None:
    """Where a key holds its chat messages (``body`` for HTTP, ``local`` for the embedded model)."""
    if not isinstance(key, Mapping):
        return None
    for place in ("body", "local"):
        holder = key.get(place)
        if isinstance(holder, Mapping) and isinstance(holder.get("messages"), list):
            return place, holder["messages"]
    return None


def _is_tool(message: Any) -> bool:
    return isinstance(message, Mapping) and message.get("role") == "tool"


def matching_form(key: Any) -> Any:
    """``key`` with the content of its ``"tool"`` messages blanked (``key`` itself when it has none)."""
    found = _messages_of(key)
    if found is None or not any(_is_tool(m) for m in found[1]):
        return key
    place, messages = found
    blanked = [{**m, "content": None} if _is_tool(m) else m for m in messages]
    return {**key, place: {**key[place], "messages": blanked}}


def _calls(messages: list[Any]) -> list[tuple[str, str, Any]]:
    """Every call the assistant messages asked for, in order: (id, name, arguments)."""
    calls = []
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") != "assistant":
            continue
        for call in message.get("tool_calls") or ():
            if not isinstance(call, Mapping):
                continue
            inner = call.get("function")
            function: Mapping[str, Any] = inner if isinstance(inner, Mapping) else call
            name = str(function.get("name") or "?")
            calls.append((str(call.get("id") or ""), name, function.get("arguments")))
    return calls


def call_label(name: str, arguments: Any, limit: int | None = _LABEL_VALUE) -> str:
    """A call as a reader knows it: ``name(a=1, b='x')``, values cut to ``limit`` characters (None: whole)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return f"{name}({arguments[:limit]})"
    if not isinstance(arguments, Mapping):
        return f"{name}()"
    parts = []
    for arg, value in arguments.items():
        shown = repr(value)
        if limit is not None and len(shown) > limit:
            shown = shown[: limit - 1] + "…"
        parts.append(f"{arg}={shown}")
    return f"{name}({', '.join(parts)})"


def _latest_results(key: Any) -> list[tuple[str, Any]]:
    """The results a request brings (its tool messages after the last assistant one), labelled by call."""
    found = _messages_of(key)
    if found is None:
        return []
    messages = found[1]
    start = len(messages)
    while start and _is_tool(messages[start - 1]):
        start -= 1
    trailing = messages[start:]
    if not trailing:
        return []
    calls = _calls(messages[:start])
    by_id = {call_id: (name, arguments) for call_id, name, arguments in calls if call_id}
    # Calls without ids (Ollama) are answered in order: the last ones asked match the trailing results.
    unnamed = calls[-len(trailing):] if len(calls) >= len(trailing) else []
    results = []
    for index, message in enumerate(trailing):
        call = by_id.get(str(message.get("tool_call_id") or ""))
        if call is None and unnamed:
            call = unnamed[index][1:]
        name = call[0] if call else str(message.get("name") or message.get("tool_name") or "a tool")
        results.append((call_label(name, call[1]) if call else f"{name}(…)", message.get("content")))
    return results


def changed_results(key: Any, recorded: Any) -> list[str]:
    """The calls whose result in ``key`` (a replayed request) differs from the one in ``recorded``."""
    now, then = _latest_results(key), _latest_results(recorded)
    if len(now) != len(then):
        return [label for label, _ in now]
    return [label for (label, result), (_, before) in zip(now, then, strict=True) if result != before]
