"""The answer of a generation: an iterator of text pieces that is also a result.

``binding.generate(...)`` returns a :class:`Response` at once; the request is
sent when it is first iterated (or when ``.text`` is read). Iterating yields
the text as it arrives; afterwards the response holds the whole text, the
token counts the server gave, the finish reason and the timing.

However reading stops, the text received until then stays in ``.text`` and
the state says why: ``done`` only when the server finished the answer;
``interrupted`` when the reader left early (``break``, ``KeyboardInterrupt``,
:meth:`Response.cancel` from any thread); ``error`` when the backend failed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .errors import BindingError, UnexpectedError
from .schema import ToolCall

__all__ = ["Response"]

_NEW, _RUNNING, _DONE, _CLOSED = "new", "running", "done", "closed"
CANCELLED = "cancelled"  # the finish reason of an answer stopped by the reader


class Response:
    """A streamed (or one-piece) answer from a binding.

    Attributes
    ----------
    binding, model:
        What produced the answer.
    options:
        The generation options sent (validated, never containing keys).
    prompt_tokens, completion_tokens:
        Token counts, as the server reported them or the model's own
        tokenizer counted them (else ``None``).
    finish_reason:
        ``"stop"``, ``"length"``... as the server said; ``"cancelled"`` when
        the reader stopped the answer.
    error:
        The :class:`~lollms_magics.errors.BindingError` that ended the stream, if any.
    interrupted:
        True when the reader stopped before the end.
    ignored_options:
        The options the backend could not honour (they were not sent).
    notes:
        Quiet remarks about how the request was made (history cut to fit...).
    tool_calls:
        The calls of tools the model asked for (:class:`~lollms_magics.schema.ToolCall`),
        filled by the binding as the stream gives them (an answer asked with
        ``tools=``); the answer's text may then be empty.
    tool_runs:
        For an answer of :meth:`Session.ask(..., tools=...) <lollms_magics.core.session.Session.ask>`:
        every :class:`~lollms_magics.core.tools.ToolRun`, in order, once read.
    """

    def __init__(self, binding: str, model: str | None, options: dict[str, Any]) -> None:
        self.binding = binding
        self.model = model
        self.options = options
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.finish_reason: str | None = None
        self.error: BindingError | None = None
        # Set when another backend answered than the one asked (bindings.chain, a replay miss).
        self.fallback: dict[str, Any] | None = None
        self.interrupted = False
        self.ignored_options: list[str] = []
        self.notes: list[str] = []
        self.tool_calls: list[ToolCall] = []
        self.tool_runs: list[Any] = []  # core.tools.ToolRun, filled by the tool loop
        self._source: Iterator[str] | None = None
        self._chunks: list[str] = []
        self._reasoning: list[str] = []
        self._state = _NEW
        self._text: str | None = None
        self._started: float | None = None
        self._first: float | None = None
        self._ended: float | None = None
        # Cancelling: a list so that the hot loop tests it for truth without an
        # attribute lookup; filled by cancel(), possibly from another thread.
        self._cancelled: list[bool] = []
        self._stopped = threading.Event()  # the same, for a wait to wake on (a retry's)
        self._aborters: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[Response], None]] = []

    # -- iteration ---------------------------------------------------------

    def __iter__(self) -> Iterator[str]:
        if self._state in (_DONE, _CLOSED):
            return iter(self._chunks)  # replay what was received
        if self._state == _RUNNING:
            raise RuntimeError("this response is already being iterated")
        return self._run()

    def _run(self) -> Iterator[str]:
        assert self._source is not None, "a binding must set Response._source"
        with self._lock:  # against a cancel() deciding, in another thread, that nothing started
            if self._state != _NEW:
                return
            self._state = _RUNNING
        source = self._source
        append = self._chunks.append
        cancelled = self._cancelled
        self._started = time.perf_counter()
        try:
            if cancelled:
                return
            # The first piece is handled apart so the hot loop below does no
            # bookkeeping beyond append, yield and the cancel test.
            for chunk in source:
                if chunk:
                    self._first = time.perf_counter()
                    append(chunk)
                    yield chunk
                    break
            if cancelled:
                return
            for chunk in source:
                append(chunk)
                yield chunk
                if cancelled:
                    return
            self._finish(_DONE)
        except BindingError as exc:
            if cancelled:  # cancel() cut the connection under a blocked read
                return
            self._fail(exc)
            raise
        except GeneratorExit:  # the reader left the loop (break) or dropped us
            self.interrupted = True
            raise
        except Exception as exc:  # a library's error or a bug: typed, with the text kept
            if cancelled:
                return
            error = UnexpectedError(
                f"{self.binding} failed unexpectedly ({type(exc).__name__}: {exc}); "
                "rerun with --debug for the traceback",
                binding=self.binding,
            )
            self._fail(error)
            raise error from exc
        except BaseException:  # KeyboardInterrupt, SystemExit
            self.interrupted = True
            raise
        finally:
            self._release(source)

    def _fail(self, error: BindingError) -> None:
        error.partial_text = "".join(self._chunks)
        self.error = error

    def _release(self, source: Iterator[str]) -> None:
        # Closing the binding's generator leaves its ``with``/``finally``
        # blocks, which close the HTTP response at once.
        close = getattr(source, "close", None)
        if close is not None:
            try:
                close()
            except ValueError:  # "generator already executing": another thread is inside it
                pass
        if self._state == _RUNNING:  # not finished: an error, an interrupt or a cancel
            if self._cancelled or self.interrupted:
                self.interrupted = True
                self.finish_reason = CANCELLED
            self._finish(_CLOSED)

    def _finish(self, state: str) -> None:
        if self._state == _RUNNING:
            self._state = state
            self._ended = time.perf_counter()
            self._run_callbacks()

    def _run_callbacks(self) -> None:
        for callback in self._callbacks:
            callback(self)

    # -- for bindings --------------------------------------------------------

    def on_abort(self, abort: Callable[[], None]) -> None:
        """Register how to unblock a read in progress (e.g. shut a socket down) when cancelled."""
        with self._lock:
            self._aborters.append(abort)
            cancelled = bool(self._cancelled)
        if cancelled:
            _call(abort)

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds`` (before a retry), or less when cancelled meanwhile; True when cancelled."""
        return self._stopped.wait(max(seconds, 0.0))

    def add_reasoning(self, text: str) -> None:
        """Keep a piece of the model's reasoning, apart from the answer."""
        self._reasoning.append(text)

    def on_finish(self, callback: Callable[[Response], None]) -> None:
        """Call ``callback(self)`` once the answer has ended, whatever the reason."""
        self._callbacks.append(callback)

    # -- control -------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` (or :meth:`close`) was called on an unfinished answer."""
        return bool(self._cancelled)

    def cancel(self) -> None:
        """Stop the answer; safe to call from any thread (a Stop button, a timer).

        The iteration ends within a fraction of a second, the HTTP stream is
        closed, and the text received so far is kept. Afterwards the response
        is not ``done``, is ``interrupted``, and its finish reason is
        ``"cancelled"``. Cancelling a finished answer does nothing.
        """
        with self._lock:
            if self._state in (_DONE, _CLOSED) or self._cancelled:
                return
            self._cancelled.append(True)
            self._stopped.set()
            aborters = list(self._aborters)
            never_started = self._state == _NEW
            if never_started:
                self._state = _CLOSED
        if never_started:
            self.interrupted = True
            self.finish_reason = CANCELLED
            if self._source is not None and hasattr(self._source, "close"):
                self._source.close()
            self._ended = time.perf_counter()
            self._run_callbacks()
            return
        for abort in aborters:
            _call(abort)

    def close(self) -> None:
        """Stop reading and close the HTTP stream; the text so far is kept (see :meth:`cancel`)."""
        self.cancel()

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
    def reasoning(self) -> str:
        """The model's reasoning, when it sent some apart from its answer (else ``""``)."""
        return "".join(self._reasoning)

    @property
    def done(self) -> bool:
        """True when the server finished the answer normally."""
        return self._state == _DONE

    @property
    def incomplete(self) -> bool:
        """True when the answer ended before the server finished it (error or interrupt)."""
        return self._state == _CLOSED

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
        """Generation speed after the first token, from the completion token count.

        None when the count is unknown or too small to time.
        """
        if self._first is None or self._ended is None or not self.completion_tokens:
            return None
        elapsed = self._ended - self._first
        if elapsed <= 0 or self.completion_tokens <= 1:
            return None
        return (self.completion_tokens - 1) / elapsed

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
        if self.incomplete:
            info["incomplete"] = True
        if self.interrupted:
            info["interrupted"] = True
        if self.error is not None:
            info["error"] = str(self.error)
        if self.ignored_options:
            info["ignored_options"] = list(self.ignored_options)
        if self.fallback:  # who answered instead, and what failed first
            info["fallback"] = dict(self.fallback)
        if self.notes:
            info["notes"] = list(self.notes)
        return info

    def __str__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<Response {self.binding}:{self.model} {self._state}, {len(self._chunks)} pieces>"


def _call(abort: Callable[[], None]) -> None:
    try:
        abort()
    except OSError:  # the connection is already gone
        pass
