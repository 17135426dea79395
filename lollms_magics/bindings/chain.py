"""A fallback chain: when a backend fails before its first piece of text, the next one answers.

``Session(fallbacks=["ollama:llama3.2", "llamacpp"])`` gives every binding
the session makes a :class:`Chain` of the other backends. ``generate()``
then returns the primary's :class:`~lollms_magics.response.Response` as
usual, but reading it tries the fallbacks in order when the primary fails
before any text came: a refused connection, a timeout, a 429 once its
retries are spent, a 5xx, a used-up quota, a missing key or model, a prompt
the replay file lacks. A failure after text has arrived is never switched:
an answer is never stitched from two models. Bad options and unreadable
images still fail at once, in ``generate()``.

The response then names the backend that answered (``binding``, ``model``),
a note says which one failed and why, and ``response.fallback`` (also in
its metadata) lists them. When every backend fails, the primary's error is
raised, its message naming what the fallbacks said.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import (
    AuthenticationError,
    BindingError,
    BindingTimeout,
    InvalidOptionError,
    LollmsMagicsError,
    NotRecordedError,
    RateLimitError,
    ServerError,
    ServerUnreachableError,
    StreamBrokenError,
    UnknownModelError,
    UnsupportedFeatureError,
)

if TYPE_CHECKING:
    from ..response import Response
    from ..schema import GenerationRequest
    from .base import Binding

__all__ = ["ROUND_PAUSE", "SWITCHING", "Chain", "Fallback", "Switch", "reason_of"]

ROUND_PAUSE = 1.0  # seconds between two rounds of a chain whose backends were all busy

# The failures that send a request to the next backend (when no text came yet).
SWITCHING: tuple[type[BindingError], ...] = (
    ServerUnreachableError,  # refused, unknown host, and a replay file's miss
    BindingTimeout,
    RateLimitError,  # 429 once retries are spent, or a quota used up
    ServerError,  # 5xx, or an error in a 200 body
    StreamBrokenError,  # the connection closed before any text
    AuthenticationError,  # no key, or a rejected one: another backend may need none
    UnknownModelError,  # this server lacks the model
)


@dataclass(frozen=True)
class Fallback:
    """One backend of a chain: its label (``"ollama:llama3.2"``) and how to get its binding."""

    label: str
    make: Callable[[], Binding]


@dataclass(frozen=True)
class Switch:
    """What a chain did for one answer: the backends that failed (label, reason) and who answered."""

    failed: tuple[tuple[str, str], ...]
    answered_by: str | None


class _Stopped(Exception):
    """A fallback's answer was stopped by the reader: the outer response ends stopped too."""


class Chain:
    """The backends to try, in order, after a binding fails before its first text.

    ``on_switch`` hears every answer that needed a fallback (and every one
    where all failed), for ``%lollms status``. ``patience``: seconds during
    which, when a backend of the round was only busy (429 after its retries,
    the embedded model writing another answer), the round starts again from
    the chosen backend after a short pause, instead of failing.
    """

    def __init__(
        self,
        fallbacks: Sequence[Fallback],
        on_switch: Callable[[Switch], None] | None = None,
        patience: float = 0.0,
    ) -> None:
        self.fallbacks = list(fallbacks)
        self.on_switch = on_switch
        self.patience = patience

    def labels(self) -> list[str]:
        """The fallbacks' labels, in order."""
        return [f.label for f in self.fallbacks]

    def attach(self, primary: Binding, request: GenerationRequest, response: Response) -> None:
        """Make ``response`` (``primary``'s, for ``request``) try the fallbacks when it fails first."""
        first = response._source
        assert first is not None
        response._source = self._run(primary, response, first, request)

    # -- the answer ------------------------------------------------------------

    def _run(
        self, primary: Binding, response: Response, first: Iterator[str], request: GenerationRequest
    ) -> Iterator[str]:
        label = _label(primary.name, response.model)
        kept = (response.binding, response.model)
        error = yield from _attempt(first, response)
        if error is None:
            return
        failed = {label: reason_of(error)}  # per backend, its last failure
        deadline = time.monotonic() + self.patience
        backends: list[Fallback] = list(self.fallbacks)
        busy: list[Exception] = [error]  # this round's failures
        while True:
            for fallback in backends:
                if response.cancelled:
                    return
                try:
                    inner = _respond(fallback.make(), request, response.options, fallback.label == label)
                except LollmsMagicsError as exc:  # its extra missing, a text-only model given images...
                    failed[fallback.label] = reason_of(exc)
                    busy.append(exc)
                    continue
                response.on_abort(inner.cancel)
                response.binding, response.model = inner.binding, inner.model
                before = [(name, why) for name, why in failed.items() if name != fallback.label]
                response.notes.append(f"answered by {fallback.label} after {_failures(before)}")
                next_error = yield from _attempt(iter(inner), response)
                if next_error is None:
                    self._adopt(response, inner, fallback.label, before)
                    return
                response.notes.pop()
                failed[fallback.label] = reason_of(next_error)
                busy.append(next_error)
            # A backend only busy (429s, the embedded model writing another answer): a class's
            # cells wait their turn, from the chosen backend again, rather than fail.
            if not any(_busy(e) for e in busy) or time.monotonic() + ROUND_PAUSE > deadline:
                break
            if response.pause(ROUND_PAUSE):
                return  # cancelled during the wait
            backends, busy = [Fallback(label, lambda: primary), *self.fallbacks], []
        response.binding, response.model = kept
        failed_list = list(failed.items())
        self._report(Switch(tuple(failed_list), None))
        if len(failed_list) > 1:
            message = f"{error.message}; the fallbacks failed too: {_failures(failed_list[1:])}"
            error.args, error.message = (message,), message
        raise error

    def _adopt(
        self, response: Response, inner: Response, answered: str, failed: list[tuple[str, str]]
    ) -> None:
        """Carry the fallback's figures to the response read, and record the switch."""
        if inner.interrupted or inner.cancelled:
            response.cancel()
            raise _Stopped()
        for name in ("prompt_tokens", "completion_tokens", "finish_reason"):
            setattr(response, name, getattr(inner, name))
        if inner.reasoning:
            response.add_reasoning(inner.reasoning)
        response.ignored_options = list(inner.ignored_options)
        response.notes.extend(inner.notes)
        response.fallback = {
            **(inner.fallback or {}),
            "answered_by": answered,
            "failed": [{"backend": name, "error": reason} for name, reason in failed],
        }
        self._report(Switch(tuple(failed), answered))

    def _report(self, switch: Switch) -> None:
        if self.on_switch is not None:
            self.on_switch(switch)


def _attempt(source: Iterator[str], response: Response) -> Generator[str, None, BindingError | None]:
    """Pass ``source``'s pieces on; returns (as the generator's value) a switching error met before text."""
    started = False
    try:
        for piece in source:
            if piece:
                started = True
            yield piece
    except SWITCHING as exc:
        if started or response.reasoning or response.cancelled:
            raise
        return exc
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    return None


def _busy(error: Exception) -> bool:
    """A failure that says "not now" (worth another round), not "not here"."""
    if isinstance(error, RateLimitError):
        return "quota" not in str(error).lower()
    return isinstance(error, BindingError) and error.retryable


def _respond(
    binding: Binding, request: GenerationRequest, options: dict[str, Any], itself: bool = False
) -> Response:
    """``binding``'s answer to ``request`` (``itself``: made for it; else for another binding)."""
    from ..response import Response

    if not binding.supports_images and any(m.images for m in request.messages):
        raise InvalidOptionError(f"{binding.name} reads text only and cannot take images")
    if getattr(request, "tools", None) and not binding._can_call_tools():  # type: ignore[attr-defined]
        raise UnsupportedFeatureError(f"{binding.name} cannot call tools")
    binding._prepare()
    ignored = binding._ignored_options(options, request.stream)
    sent = {k: v for k, v in options.items() if k not in ignored}
    asked = replace(request, model=request.model if itself else binding.model, options=sent)
    inner = Response(binding.name, asked.model, dict(options))
    inner.ignored_options = ignored
    inner._source = binding._generate(asked, inner)
    return inner


def _label(binding: str, model: str | None) -> str:
    return f"{binding}:{model}" if model else binding


def reason_of(error: Exception) -> str:
    """A failure in a few words, for a footer: a replay miss is not spelled out whole."""
    if isinstance(error, NotRecordedError):
        return "not in the replay file"
    # The message without its advice ("...; check the URL"): what happened, in a footer.
    text = " ".join(str(error).split()).split("; ")[0]
    return text if len(text) <= 120 else text[:119] + "…"


def _failures(failed: Sequence[tuple[str, str]]) -> str:
    return "; ".join(f"{name} failed ({reason})" for name, reason in failed)
