"""The answer of a generation: an iterator of text pieces that is also a result.

``binding.generate(...)`` returns a :class:`Response` at once; the request is
sent when it is first iterated (or when ``.text`` is read). Iterating yields
the text as it arrives; afterwards the response holds the whole text, the
token counts the server gave, the finish reason and the timing. Leaving the
loop early (``break``, ``KeyboardInterrupt``, an error) closes the HTTP
stream at once, and the text received until then stays in ``.text``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from .errors import BindingError

__all__ = ["Response"]

_NEW, _RUNNING, _DONE, _CLOSED = "new", "running", "done", "closed"


class Response:
    """A streamed (or one-piece) answer from a binding.

    Attributes
    ----------
    binding, model:
        What produced the answer.
    options:
        The generation options sent (validated, never containing keys).
    prompt_tokens, completion_tokens:
        Token counts, where the server reports them (else ``None``).
    finish_reason:
        ``"stop"``, ``"length"``... as the server said, when it said.
    error:
        The :class:`~lollms_magics.errors.BindingError` that ended the stream, if any.
    interrupted:
        True when the consumer stopped reading before the end.
    """

    def __init__(self, binding: str, model: str | None, options: dict[str, Any]) -> None:
        self.binding = binding
        self.model = model
        self.options = options
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.finish_reason: str | None = None
        self.error: BindingError | None = None
        self.interrupted = False
        self.ignored_options: list[str] = []
        self._source: Iterator[str] | None = None
        self._chunks: list[str] = []
        self._state = _NEW
        self._text: str | None = None
        self._started: float | None = None
        self._first: float | None = None
        self._ended: float | None = None

    # -- iteration ---------------------------------------------------------

    def __iter__(self) -> Iterator[str]:
        if self._state in (_DONE, _CLOSED):
            return iter(self._chunks)  # replay what was received
        if self._state == _RUNNING:
            raise RuntimeError("this response is already being iterated")
        return self._run()

    def _run(self) -> Iterator[str]:
        assert self._source is not None, "a binding must set Response._source"
        self._state = _RUNNING
        source = self._source
        append = self._chunks.append
        self._started = time.perf_counter()
        try:
            # The first piece is handled apart so the hot loop below does no
            # bookkeeping beyond append-and-yield.
            for chunk in source:
                if chunk:
                    self._first = time.perf_counter()
                    append(chunk)
                    yield chunk
                    break
            for chunk in source:
                append(chunk)
                yield chunk
        except BindingError as exc:
            exc.partial_text = "".join(self._chunks)
            self.error = exc
            self._finish(_CLOSED)
            raise
        except BaseException:  # GeneratorExit (break), KeyboardInterrupt...
            self.interrupted = True
            self._finish(_CLOSED)
            raise
        finally:
            # Closing the binding's generator leaves its ``with client.stream``
            # block, which closes the HTTP response at once.
            close = getattr(source, "close", None)
            if close is not None:
                close()
        self._finish(_DONE)

    def _finish(self, state: str) -> None:
        if self._state == _RUNNING:
            self._state = state
            self._ended = time.perf_counter()

    # -- results -----------------------------------------------------------

    @property
    def text(self) -> str:
        """The whole answer; reads the rest of the stream if it was not read yet.

        After an interrupt or an error, this is the text received until then.
        """
        if self._state == _NEW:
            for _ in self:
                pass
        if self._state == _RUNNING:
            return "".join(self._chunks)
        if self._text is None:
            self._text = "".join(self._chunks)
        return self._text

    @property
    def done(self) -> bool:
        """True when the server finished the answer normally."""
        return self._state == _DONE

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from sending the request to the first piece of text."""
        if self._started is None or self._first is None:
            return None
        return self._first - self._started

    @property
    def duration(self) -> float | None:
        """Seconds from sending the request to the end of the answer."""
        if self._started is None or self._ended is None:
            return None
        return self._ended - self._started

    @property
    def tokens_per_second(self) -> float | None:
        """Generation speed after the first token.

        Uses the server's completion count when it gives one, else the number
        of pieces received (servers send about one token per piece).
        """
        if self._first is None or self._ended is None:
            return None
        elapsed = self._ended - self._first
        count = self.completion_tokens or len(self._chunks)
        if elapsed <= 0 or count <= 1:
            return None
        return (count - 1) / elapsed

    def metadata(self) -> dict[str, Any]:
        """What produced this answer, for output metadata (never holds keys)."""
        info: dict[str, Any] = {"binding": self.binding, "model": self.model}
        if self.options:
            info["options"] = dict(self.options)
        for name in ("prompt_tokens", "completion_tokens", "finish_reason"):
            value = getattr(self, name)
            if value is not None:
                info[name] = value
        for name in ("time_to_first_token", "tokens_per_second", "duration"):
            value = getattr(self, name)
            if value is not None:
                info[name] = round(value, 4)
        if self.interrupted:
            info["interrupted"] = True
        if self.error is not None:
            info["error"] = str(self.error)
        return info

    def close(self) -> None:
        """Stop reading and close the HTTP stream; the text so far is kept."""
        if self._state == _NEW:
            self._state = _CLOSED
        if self._source is not None and hasattr(self._source, "close"):
            self._source.close()

    def __str__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<Response {self.binding}:{self.model} {self._state}, {len(self._chunks)} pieces>"
