"""The last request a session sent, kept to be shown (``%lollms sent``).

What a user sees is what went out: the binding, the model, the host, every
message (the system prompt first, the conversation kept, the prompt) and the
options. What must not be shown is left out when the request is described,
never when it is kept: keys in any spelling (the session's key store masks
them), pictures (megabytes of base64), and long texts (their head and tail
stay, with the number of characters left out).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..images import EncodedImage
from ..replay.tools import call_label
from .status import safe_host

__all__ = ["LONG", "SentRequest", "describe"]

LONG = 1_500  # characters of one text shown whole; longer ones keep their head and tail
_TAIL = 300


@dataclass(frozen=True)
class SentRequest:
    """One request as the session handed it to a binding.

    ``messages`` are the chat messages in order, the system prompt first
    when there is one; a message's ``"images"`` are the pictures sent with it.
    ``ignored`` are the options the backend could not honour (not sent).
    """

    binding: str
    model: str | None
    host: str | None
    messages: list[dict[str, Any]]
    options: dict[str, Any]
    stream: bool = True
    ignored: list[str] = field(default_factory=list)
    schema: Any = None


def _image(image: Any) -> str:
    if isinstance(image, EncodedImage):
        return f"<image {image.mime}, {len(image.b64):,} base64 characters elided>"
    return f"<image {type(image).__name__} elided>"


def _text(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = max(limit - _TAIL, limit // 2)
    tail = min(_TAIL, limit - head)
    cut = len(text) - head - tail
    return f"{text[:head]}… [{cut:,} characters elided] …{text[len(text) - tail:]}"


def _value(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return _text(value, limit)
    if isinstance(value, Mapping):
        return {k: _value(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_value(v, limit) for v in value]
    return value


def describe(request: SentRequest, redact: Callable[[str], str], limit: int = LONG) -> str:
    """``request`` as text: keys masked by ``redact``, pictures and long values elided.

    Every line goes through ``redact`` last, so a key found anywhere (a
    message, an option, the host) is masked whatever its place.
    """
    lines = [
        f"binding  {request.binding}",
        f"model    {request.model or '(the server default)'}",
        f"host     {safe_host(request.host) if request.host else '(in process)'}",
        f"stream   {'yes' if request.stream else 'no'}",
        f"options  {_options(request.options, limit)}",
    ]
    if request.ignored:
        lines.append(f"not sent {', '.join(request.ignored)} (the backend cannot honour them)")
    if request.schema is not None:
        lines.append("schema   " + _text(repr(_value(request.schema, limit)), limit))
    lines.append(f"messages {len(request.messages)}")
    for number, message in enumerate(request.messages, 1):
        name = f" ({message['name']})" if message.get("role") == "tool" and message.get("name") else ""
        lines.append(f"--- [{number}] {message.get('role', '?')}{name}")
        lines.append(_text(str(message.get("content", "")), limit))
        for call in message.get("tool_calls") or ():  # a tool cell kept in the history (core/history.py)
            lines.append(_text(f"called {call_label(call.name, call.arguments)}", limit))
        for image in _images(message.get("images")):
            lines.append(_image(image))
    return "\n".join(redact(line) for line in lines)


def _options(options: Mapping[str, Any], limit: int) -> str:
    if not options:
        return "(none: the backend's defaults)"
    return ", ".join(f"{name}={_value(value, limit)!r}" for name, value in sorted(options.items()))


def _images(images: Any) -> Sequence[Any]:
    if not images:
        return ()
    return list(images) if isinstance(images, (list, tuple)) else [images]
