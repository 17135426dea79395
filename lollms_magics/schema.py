"""The plain data the layers pass to each other: messages, requests, models.

No behaviour and no heavy imports: a third-party binding can use these
without pulling anything else in.

Tool calling (issue 20) adds three things here, since bindings fill them:
:class:`ToolCall` (one call the model asked for), ``Message.tool_calls`` (an
assistant message that asked for calls) with ``tool_call_id`` and ``name``
(a ``"tool"`` message carrying one call's result), and
``GenerationRequest.tools`` / ``tool_choice`` (the function schemas offered,
OpenAI's shape: ``{"type": "function", "function": {"name", "description",
"parameters"}}``). The loop that runs the calls is in
:mod:`lollms_magics.core.tools`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .images import EncodedImage

__all__ = ["GenerationRequest", "Message", "ModelInfo", "ToolCall"]


@dataclass
class ToolCall:
    """One call of a tool the model asked for.

    ``arguments`` is the decoded JSON object (``{}`` when ``raw`` is not one);
    ``raw`` is the arguments as the model wrote them (OpenAI sends a string,
    Ollama an object, kept here as its JSON). ``id`` is the server's, or one
    made up (``call_<n>``) when the protocol gives none (Ollama).
    """

    id: str
    name: str
    arguments: dict[str, Any]
    raw: str

    @classmethod
    def parse(cls, id: str, name: str, raw: str | Mapping[str, Any] | None) -> ToolCall:
        """A call from the arguments as the wire gave them: a JSON string or an object."""
        if isinstance(raw, Mapping):
            return cls(id, name, dict(raw), json.dumps(raw, ensure_ascii=False))
        text = raw or ""
        try:
            decoded = json.loads(text) if text.strip() else {}
        except ValueError:
            decoded = None
        return cls(id, name, decoded if isinstance(decoded, dict) else {}, text)

    @property
    def well_formed(self) -> bool:
        """Whether ``raw`` is a JSON object (or empty): a call whose arguments do not parse is refused."""
        if not self.raw.strip():
            return True
        try:
            return isinstance(json.loads(self.raw), dict)
        except ValueError:
            return False

    def wire(self) -> dict[str, Any]:
        """The call in OpenAI's message shape (``arguments`` as a JSON string)."""
        function = {"name": self.name, "arguments": self.raw or "{}"}
        return {"id": self.id, "type": "function", "function": function}


@dataclass
class Message:
    """One chat message; ``images`` belong to it (vision models).

    An assistant message that asked for tools carries ``tool_calls`` (its
    ``content`` may be empty); a ``"tool"`` message carries one result in
    ``content``, with the ``tool_call_id`` and ``name`` of the call it answers.
    """

    role: str
    content: str
    images: list[EncodedImage] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


@dataclass
class GenerationRequest:
    """What a binding is asked to generate, already validated.

    ``schema`` is a JSON Schema the answer must follow, when one was asked
    for: a binding that can constrain its backend to it does (Ollama's
    ``format``, OpenAI's ``response_format``, llama.cpp's grammar); the others
    leave it to the instructions the caller put in the messages.

    ``tools`` are the function schemas offered to the model (OpenAI's shape),
    ``tool_choice`` OpenAI's ``"auto"``/``"none"``/``"required"`` or a named
    function (None: the server's default); a binding without a tool API
    refuses a request that has tools.
    """

    messages: list[Message]
    model: str | None
    options: dict[str, Any]
    stream: bool
    schema: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None


@dataclass(frozen=True)
class ModelInfo:
    """A model a server offers: its name and whatever details the server gave."""

    name: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name
