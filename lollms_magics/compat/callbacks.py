"""The streaming callback contract of lollms-client, over a :class:`~lollms_magics.Response`.

A callback is called as ``callback(chunk, msg_type)`` (steps of long tasks
add a third positional dict, as lollms-client's helpers do), so the course's
``def cb(chunk, msg_type, params=None, metadata=None) -> bool`` and a plain
``def cb(chunk, msg_type)`` both work. What is sent:

* ``MSG_TYPE_CHUNK`` for each piece of the answer, as it arrives;
* ``MSG_TYPE_THOUGHT_CHUNK`` for the model's reasoning, when the server sends
  it apart from the answer (Ollama's ``thinking``, ``reasoning_content``),
  just before the answer piece it came with;
* ``MSG_TYPE_EXCEPTION`` with the one-line error when the backend fails.

What the callback returns:

* ``False`` (or another false value such as ``0``) stops the generation: the
  HTTP stream is closed at once and the text received so far is returned;
* ``None`` **continues**. lollms-client's HTTP bindings stop on ``None`` too
  (``if not callback(...)``), so a callback that forgets its ``return True``
  cuts every answer after the first piece; its legacy lollms binding ignored
  the value altogether. A forgotten return should not cut answers, so here
  only an explicit false value stops;
* anything true continues.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import LollmsMagicsError
from ..response import Response
from .enums import MSG_TYPE

__all__ = ["Callback", "error_dict", "one_line", "read_answer", "stops"]

Callback = Callable[..., Any]


def stops(returned: Any) -> bool:
    """Whether a callback's return value asks to stop: an explicit false value, never ``None``."""
    return returned is not None and not returned


def one_line(text: str, limit: int = 300) -> str:
    """``text`` folded onto one line of at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def error_dict(message: str) -> dict[str, Any]:
    """lollms-client's failure value: ``{"status": False, "error": ...}`` (and 1.x's ``"message"``)."""
    return {"status": False, "error": message, "message": message}


def read_answer(
    response: Response,
    callback: Callback | None,
    redact: Callable[[str], str],
) -> str | dict[str, Any]:
    """Read ``response`` to its end (or until ``callback`` stops it); the text, or an error dict."""
    sent_thought = 0
    pieces = iter(response)
    try:
        for piece in pieces:
            if callback is None:
                continue
            sent_thought = _thoughts(response, callback, sent_thought)
            if stops(callback(piece, MSG_TYPE.MSG_TYPE_CHUNK)):
                response.cancel()  # also unblocks a read in progress
                break
        if callback is not None:
            _thoughts(response, callback, sent_thought)
    except LollmsMagicsError as exc:
        return failure(exc, callback, redact)
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()  # leaves the binding's generator: the HTTP response is closed now
    return response.text


def failure(exc: BaseException, callback: Callback | None, redact: Callable[[str], str]) -> dict[str, Any]:
    """Report ``exc`` to ``callback`` as ``MSG_TYPE_EXCEPTION``; the error dict to return."""
    message = one_line(redact(str(exc) or type(exc).__name__))
    if callback is not None:
        callback(message, MSG_TYPE.MSG_TYPE_EXCEPTION)
    return error_dict(message)


def _thoughts(response: Response, callback: Callback, sent: int) -> int:
    """Send the reasoning that arrived since ``sent`` characters; the new count."""
    reasoning = response.reasoning
    if len(reasoning) > sent:
        callback(reasoning[sent:], MSG_TYPE.MSG_TYPE_THOUGHT_CHUNK)
    return len(reasoning)
