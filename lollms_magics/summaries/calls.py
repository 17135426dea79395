"""One model call for a summary: options, streaming, loop guard, figures, cache.

Every call gets an explicit ``n_predict`` and stop sequences; its streamed
answer is watched by a :class:`~lollms_magics.summaries.quality.RunawayGuard`
and cut as soon as it loops; a shared cancel flag (set on an interrupt or
when another thread failed) stops it between two pieces. The figures (calls,
prompt and completion tokens) use the server's counts when it reports them,
else the counter's estimate.

``extra_options`` go with every call; an option a host cannot take (its
binding leaves it out, or lists it in ``Response.ignored_options``) is said
once per host through ``on_notice`` (the window size matters: a server that
keeps a smaller window than the chunks were planned for cuts them silently).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .prompts import TEMPLATE_TOKENS, Prompt
from .quality import RunawayGuard
from .resume import CallCache, call_key
from .tokens import TokenCounter

__all__ = ["Answer", "Caller", "Cancelled", "Figures"]


class Cancelled(Exception):
    """The summary was stopped (an interrupt, or a failure elsewhere) while this call ran."""


@dataclass
class Answer:
    """What one call gave."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    cached: bool = False
    looped: bool = False


@dataclass
class Figures:
    """Totals over a summary's calls (cached answers are not calls)."""

    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    looped: int = 0


class Caller:
    """Makes the calls of one summary; safe to use from several threads."""

    def __init__(
        self,
        counter: TokenCounter,
        cache: CallCache,
        temperature: float | None,
        extra_options: dict[str, Any] | None = None,
    ) -> None:
        self.counter = counter
        self.cache = cache
        self.temperature = temperature
        self.extra_options = dict(extra_options or {})
        self.cancel = threading.Event()
        self.figures = Figures()
        self._lock = threading.Lock()
        self._active: set[Any] = set()  # the responses being read, cancelled by stop()
        self.on_notice: Callable[[str], None] | None = None
        # Hears each answer once it ended (a session's usage counts it), whatever the reason.
        self.on_call: Callable[[Any], None] | None = None
        self._noticed: set[tuple[str, str]] = set()

    def stop(self) -> None:
        """Stop every call: running answers end now (even one waiting for its first token)."""
        self.cancel.set()
        with self._lock:
            active = list(self._active)
        for response in active:
            cancel = getattr(response, "cancel", None)
            if callable(cancel):
                cancel()  # thread-safe: closes the HTTP stream under the reading thread

    def call(
        self,
        binding: Any,
        prompt: Prompt,
        n_predict: int,
        stop: Sequence[str] = (),
        *,
        on_piece: Callable[[str], None] | None = None,
        cache: bool = True,
    ) -> Answer:
        """Ask ``binding``; the answer comes from the cache when this exact call already finished."""
        options = self._options(binding, n_predict, stop)
        messages = prompt.messages()
        key = call_key(
            str(getattr(binding, "model", None) or getattr(binding, "name", "")), messages, options
        )
        if cache:
            stored = self.cache.get(key)
            if stored is not None:
                with self._lock:
                    self.figures.cached += 1
                return Answer(str(stored["text"]), 0, 0, stored.get("finish_reason"), cached=True)
        answer = self._send(binding, prompt, options, on_piece)
        if cache and answer.text.strip():
            self.cache.put(key, {"text": answer.text, "finish_reason": answer.finish_reason})
        return answer

    def _options(self, binding: Any, n_predict: int, stop: Sequence[str]) -> dict[str, Any]:
        options: dict[str, Any] = {**self.extra_options, "n_predict": n_predict}
        if stop:
            options["stop"] = list(stop)
        if self.temperature is not None:
            options["temperature"] = self.temperature
        supported = getattr(binding, "_option_map", None)
        if callable(supported):
            # Options the backend cannot honour are left out here rather than warned about per call.
            names = supported()
            self._not_taken(binding, [k for k in self.extra_options if k not in names])
            options = {k: v for k, v in options.items() if k in names or k == "n_predict"}
        return options

    def _not_taken(self, binding: Any, names: Sequence[str]) -> None:
        """Say once per host which of the summary's own options it cannot take."""
        label = str(getattr(binding, "host", "") or getattr(binding, "name", "binding"))
        for name in names:
            with self._lock:
                if name not in self.extra_options or (label, name) in self._noticed:
                    continue
                self._noticed.add((label, name))
            if self.on_notice is not None:
                self.on_notice(_not_taken_line(label, binding, name, self.extra_options[name]))

    def _send(
        self, binding: Any, prompt: Prompt, options: dict[str, Any], on_piece: Callable[[str], None] | None
    ) -> Answer:
        if self.cancel.is_set():
            raise Cancelled()
        response = binding.generate(prompt.messages(), stream=True, **options)
        self._not_taken(binding, list(getattr(response, "ignored_options", None) or ()))
        guard = RunawayGuard()
        pieces: list[str] = []
        with self._lock:
            self.figures.calls += 1
            self._active.add(response)
        if self.cancel.is_set():  # stopped between the two checks: do not wait for this answer
            response.close()
        try:
            for piece in response:
                if self.cancel.is_set():
                    raise Cancelled()
                pieces.append(piece)
                if on_piece is not None:
                    on_piece(piece)
                if guard.feed(piece):
                    break  # leaving the loop closes the stream: the server stops writing
        finally:
            with self._lock:
                self._active.discard(response)
            self._count(response, prompt, pieces, guard)
            if self.on_call is not None:
                self.on_call(response)
        if self.cancel.is_set():
            raise Cancelled()  # a cancelled answer is partial: never cached, never used
        text = guard.text_before_loop() if guard.tripped else "".join(pieces)
        return Answer(
            text,
            int(response.prompt_tokens or 0),
            int(response.completion_tokens or 0),
            "loop" if guard.tripped else response.finish_reason,
            looped=guard.tripped,
        )

    def _count(self, response: Any, prompt: Prompt, pieces: list[str], guard: RunawayGuard) -> None:
        if response.prompt_tokens is None:
            response.prompt_tokens = self.counter.estimate(prompt.text) + TEMPLATE_TOKENS
        if response.completion_tokens is None:
            response.completion_tokens = len(pieces)  # servers send about one token per piece
        with self._lock:
            self.figures.prompt_tokens += int(response.prompt_tokens)
            self.figures.completion_tokens += int(response.completion_tokens)
            self.figures.looped += int(guard.tripped)


def _not_taken_line(label: str, binding: Any, name: str, value: Any) -> str:
    who = f"{getattr(binding, 'name', 'the binding')} at {label}"
    if name == "ctx_size":
        return (
            f"{who} cannot be given a context size: its server keeps its own window, "
            f"which must hold {value} tokens or the parts are cut"
        )
    return f"{who} cannot take {name}={value!r}; it is not sent"
