"""The plain data the layers pass to each other: messages, requests, models.

No behaviour and no heavy imports: a third-party binding can use these
without pulling anything else in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .images import EncodedImage

__all__ = ["GenerationRequest", "Message", "ModelInfo"]


@dataclass
class Message:
    """One chat message; ``images`` belong to it (vision models)."""

    role: str
    content: str
    images: list[EncodedImage] = field(default_factory=list)


@dataclass
class GenerationRequest:
    """What a binding is asked to generate, already validated.

    ``schema`` is a JSON Schema the answer must follow, when one was asked
    for: a binding that can constrain its backend to it does (Ollama's
    ``format``, OpenAI's ``response_format``, llama.cpp's grammar); the others
    leave it to the instructions the caller put in the messages.
    """

    messages: list[Message]
    model: str | None
    options: dict[str, Any]
    stream: bool
    schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class ModelInfo:
    """A model a server offers: its name and whatever details the server gave."""

    name: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name
