"""Tool calls on the embedded model, through llama-cpp-python's ``chatml-function-calling`` handler.

The handler lists the tools in the system message and lets grammars decide:
first whether the model writes a message or calls ``functions.<name>``, then
the call's arguments, which follow the tool's JSON Schema. It speaks ChatML,
the format of SmolLM2 (the default model) and of many small instruct models.
It cannot stream a call (llama-cpp-python raises "Automatic streaming tool
choice is not supported"), so a request with tools is answered whole. Its
template has no place for a ``"tool"`` message (one would be dropped, and
its unclosed turn would spoil the prompt), so a tool's result is given as a
user turn naming the function; and it lists the tools only inside a system
message, so one is added when the conversation has none.
"""

from __future__ import annotations

from typing import Any

from ..response import Response
from ..schema import GenerationRequest, Message, ToolCall

__all__ = ["answer_with_tools", "handler_messages"]

DEFAULT_SYSTEM = "You are a helpful assistant. Call a function when it helps to answer."


def handler_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """The conversation as the ``chatml-function-calling`` template renders it."""
    out: list[dict[str, Any]] = []
    if not messages or messages[0].role != "system":
        out.append({"role": "system", "content": DEFAULT_SYSTEM})
    for m in messages:
        if m.role == "tool":
            name = m.name or "tool"
            out.append({"role": "user", "content": f"functions.{name} returned:\n{m.content}"})
        elif m.tool_calls:
            calls = [c.wire() for c in m.tool_calls]
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": calls})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def answer_with_tools(
    llama: Any, request: GenerationRequest, response: Response, kwargs: dict[str, Any]
) -> str:
    """Ask ``llama`` with the request's tools: the calls go to ``response.tool_calls``; returns the text."""
    from llama_cpp.llama_chat_format import get_chat_completion_handler

    handler: Any = get_chat_completion_handler("chatml-function-calling")  # typed for its own dicts
    kwargs = dict(kwargs)
    seed = kwargs.pop("seed", None)
    if seed is not None:  # the handler takes no seed: set it on the model, as create_chat_completion does
        llama.set_seed(seed)
    choice = request.tool_choice if request.tool_choice is not None else "auto"
    result: Any = handler(
        llama=llama, messages=handler_messages(request.messages), tools=request.tools,
        tool_choice=choice, stream=False, **kwargs,
    )
    first = result["choices"][0]
    message = first["message"]
    response.finish_reason = first.get("finish_reason")
    usage = result.get("usage") or {}
    response.prompt_tokens = usage.get("prompt_tokens") or response.prompt_tokens
    for index, call in enumerate(message.get("tool_calls") or ()):
        function = call["function"]
        response.tool_calls.append(
            ToolCall.parse(f"call_{index}", str(function["name"]), function.get("arguments"))
        )
    return str(message.get("content") or "")
