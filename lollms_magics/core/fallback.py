"""The session's fallback backends: who answers when the chosen one fails before its first text.

``Session(fallbacks=["ollama:llama3.2", "llamacpp"])`` (or ``%config
LollmsMagics.fallbacks``, or ``%%lollms --fallback-to B[:M],...`` for one
cell) lists them in order. :meth:`Session.binding` gives each binding it
makes a :class:`~lollms_magics.bindings.chain.Chain` of the others, so
``ask``, ``map`` (``--each``), summaries and the panels all use it.

While a replay file is played with ``--fallback embedded``, the embedded
model is put last in every chain: a prompt the file lacks is answered by it
(marked as such) instead of failing the cell.

What the chains did (the last few switches) is kept for ``%lollms status``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..errors import InvalidOptionError, LollmsMagicsError
from .target import Target

if TYPE_CHECKING:
    from ..bindings.base import Binding
    from ..bindings.chain import Chain, Switch
    from ..tti.base import ImageBinding, ImageResult

__all__ = ["EMBEDDED", "Fallbacks", "parse_fallbacks"]

EMBEDDED = "llamacpp"  # the binding that answers a replay miss with --fallback embedded
# Seconds a cell falling back to the embedded model waits for it while it writes another
# thread's answer (a mapped cell's items, students' threads), instead of failing at once.
EMBEDDED_WAIT = 5.0
# Seconds a chain whose backends are all busy (429s, the embedded model taken) keeps trying
# them, round after round, before the cell fails: a class's cells wait their turn.
PATIENCE = 120.0


def parse_fallbacks(specs: str | Iterable[str] | None, *, image: bool = False) -> list[Target]:
    """``"ollama:llama3.2,llamacpp"`` or a list of ``BINDING[:MODEL][@URL]`` as targets; names checked now."""
    from ..bindings import binding_class
    from ..tti import image_binding_class

    if specs is None:
        return []
    words = specs.split(",") if isinstance(specs, str) else list(specs)
    targets = []
    for word in words:
        if not isinstance(word, str):
            raise InvalidOptionError(f"a fallback is written BINDING[:MODEL], not {word!r}")
        word = word.strip()
        if not word:
            continue
        host = None
        if "@http" in word:  # BINDING[:MODEL]@URL: a server elsewhere than the binding's default
            word, _, rest = word.partition("@http")
            host = "http" + rest
        name, _, model = word.partition(":")
        (image_binding_class if image else binding_class)(name)  # UnknownBindingError at once for a typo
        targets.append(Target(name, model or None, host, "a fallback"))
    return targets


class Fallbacks:
    """The fallback backends of a session (text and images), and what they did lately."""

    def __init__(self) -> None:
        self.text: list[Target] = []
        self.images: list[Target] = []
        self.events: deque[tuple[float, Switch]] = deque(maxlen=5)
        self._lock = threading.Lock()  # switches are heard from the threads of a mapped cell
        self._embedded: dict[str | None, Binding] = {}  # per model: the fallback's own, which waits its turn

    def labels(self, targets: list[Target], safe: bool = False) -> list[str]:
        """``BINDING[:MODEL][@URL]`` of each target; ``safe``: the URL without user:password or keys."""
        from .status import safe_host

        labels = []
        for t in targets:
            label = f"{t.name}:{t.model}" if t.model else t.name
            labels.append(f"{label}@{safe_host(t.host) if safe else t.host}" if t.host else label)
        return labels

    def chain_for(self, target: Target, make: Callable[[Target], Binding]) -> Chain | None:
        """The chain for a binding made for ``target`` (None when there is nothing to fall back to)."""
        from ..bindings.chain import Chain, Fallback

        wanted = list(self.text)
        if _embedded_on_miss() and not any(t.name == EMBEDDED for t in wanted):
            wanted.append(Target(EMBEDDED, None, None, "the replay's --fallback embedded"))
        chain = [
            Fallback(label, self._embedded_maker(t) if t.name == EMBEDDED and not t.host else _maker(make, t))
            for t, label in zip(wanted, self.labels(wanted, safe=True), strict=True)
            if not _same(t, target)
        ]
        return Chain(chain, self._heard, PATIENCE) if chain else None

    def _embedded_maker(self, target: Target) -> Callable[[], Binding]:
        def make() -> Binding:
            with self._lock:
                binding = self._embedded.get(target.model)
                if binding is None:
                    from ..bindings import binding_class

                    binding = binding_class(EMBEDDED)(model=target.model)
                    binding.busy_wait = EMBEDDED_WAIT  # type: ignore[attr-defined]  # LlamaCppBinding's
                    self._embedded[target.model] = binding
                return binding

        return make

    def make_images(
        self, chosen: ImageBinding, target: Target, make: Callable[[Target], ImageBinding],
        call: Callable[[ImageBinding], ImageResult],
    ) -> ImageResult:
        """``call(chosen)``; when it fails as a chain switches (refused, 429, 5xx...), the image fallbacks'.

        A picture is whole or nothing, so any such failure may switch. The
        result's ``info["fallback"]`` (and its metadata) names who made it and what failed.
        """
        from ..bindings.chain import SWITCHING, Switch, reason_of

        try:
            return call(chosen)
        except SWITCHING as first:
            error = first
        failed = [(self.labels([target], safe=True)[0], reason_of(error))]
        others = [t for t in self.images if not _same(t, target)]
        for fallback, label in zip(others, self.labels(others, safe=True), strict=True):
            try:
                result = call(make(fallback))
            except SWITCHING as exc:
                failed.append((label, reason_of(exc)))
                continue
            except LollmsMagicsError as exc:  # an option that binding refuses, its extra missing...
                failed.append((label, reason_of(exc)))
                continue
            result.info["fallback"] = {
                "answered_by": label, "failed": [{"backend": n, "error": r} for n, r in failed],
            }
            self._heard(Switch(tuple(failed), label))
            return result
        if others:
            self._heard(Switch(tuple(failed), None))
            message = f"{error.message}; the fallbacks failed too: " + "; ".join(
                f"{n} failed ({r})" for n, r in failed[1:]
            )
            error.args, error.message = (message,), message
        raise error

    def _heard(self, switch: Switch) -> None:
        with self._lock:
            self.events.append((time.time(), switch))

    def status_rows(self) -> list[tuple[str, str]]:
        """The ``fallback`` rows of ``%lollms status``: the chain, and what failed lately."""
        rows: list[tuple[str, str]] = []
        if self.text:
            rows.append(("fallback", " → ".join(self.labels(self.text, safe=True))))
        if self.images:
            rows.append(("images", "fallback " + " → ".join(self.labels(self.images, safe=True))))
        if _embedded_on_miss():
            rows.append(("replay", "a prompt the file lacks is answered by the embedded model"))
        with self._lock:
            events = list(self.events)
        for when, switch in events[-3:]:
            failed = "; ".join(f"{name} failed ({reason})" for name, reason in switch.failed)
            answered = f"{switch.answered_by} answered" if switch.answered_by else "none answered"
            at = time.strftime("%H:%M:%S", time.localtime(when))
            rows.append(("switched", f"{at} {failed}; {answered}"))
        return rows


def _maker(make: Callable[[Target], Binding], target: Target) -> Callable[[], Binding]:
    return lambda: make(target)


def _same(fallback: Target, target: Target) -> bool:
    """Whether ``fallback`` is the backend itself (asking it again would fail the same way)."""
    return (
        fallback.name == target.name
        and (fallback.model is None or fallback.model == target.model)
        and (fallback.host is None or fallback.host == target.host)
    )


def _embedded_on_miss() -> bool:
    from .. import replay

    return replay.on_miss() == "embedded"
