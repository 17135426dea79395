"""What ``%lollms status`` and :meth:`Session.status` report.

The backend the last prompt went to (else the default one, which may mean
making the automatic choice), why it was chosen, whether its server answers
now, where it really is (the host a binding found, not the one it was given),
its key's state, and the conversation held: what of it the next prompt
sends, trimmed and counted as :meth:`Session.ask` does (the same window,
answer reserve, token counter and :meth:`Conversation.fit`), and what is
left out to fit the window. With fallbacks: the chain, and the switches it
made lately (what failed, who answered).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import LollmsMagicsError
from .history import answer_reserve, counter_for, estimate_tokens, history_window
from .keys import redact_urls

if TYPE_CHECKING:
    from ..bindings.base import Binding
    from .history import Conversation
    from .keys import KeyStore
    from .target import Target


class Session(Protocol):
    """What the status reads of a session (``Session``, which imports this module)."""

    last: Target | None
    keys: KeyStore
    context_size: int
    conversation: Conversation
    options: dict[str, Any]

    def default_target(self) -> Target: ...

    def binding(self, target: Target | None = None) -> Binding: ...

    def fallback_rows(self) -> list[tuple[str, str]]: ...

__all__ = ["Status", "safe_host", "status_of"]


@dataclass(frozen=True)
class Status:
    """What :meth:`Session.status` found, as label/value rows."""

    rows: list[tuple[str, str]]

    def __str__(self) -> str:
        return "\n".join(f"{label:<8} {value}" for label, value in self.rows)


def safe_host(host: str) -> str:
    """``host`` without any ``user:password@`` part, and with key-like query values masked."""
    return redact_urls(re.sub(r"//[^/@]*@", "//***@", host))


def status_of(session: Session, check: bool = True) -> Status:
    """The rows of ``session``'s status; with ``check``, the server is asked for its models."""
    try:
        target = session.last or session.default_target()
    except LollmsMagicsError as exc:
        none = ("binding", f"none: {session.keys.redact(str(exc))}")
        return Status([none, *_history_rows(session, None)])
    binding = session.binding(target)
    rows = [
        ("binding", f"{target.name} ({target.reason})"),
        ("model", binding.model or "the server's first"),
    ]
    if check:
        rows.append(("server", _server_row(session, binding)))
    rows.append(("host", safe_host(binding.host)))
    if target.name in session.keys:
        rows.append(("key", "typed in this session (kept in memory)"))
    elif binding.key_env:
        state = "set" if os.environ.get(binding.key_env) else "not set"
        rows.append(("key", f"{binding.key_env} is {state}"))
    return Status(rows + session.fallback_rows() + _history_rows(session, binding))


def _server_row(session: Session, binding: Binding) -> str:
    from ..bindings import get_binding
    from ..bindings.http import HTTPBinding

    # A probe of its own, quick to give up, on the host the binding really uses.
    quick = {"connect_timeout": 2.0, "read_timeout": 5.0, "max_retries": 0}
    probe = get_binding(
        binding.name, binding.host, binding.model, session.keys.get(binding.name),
        **(quick if isinstance(binding, HTTPBinding) else {}),
    )
    try:
        return f"answers, {len(probe.list_models())} model(s)"
    except LollmsMagicsError as exc:
        return f"does not answer: {session.keys.redact(str(exc))}"
    finally:
        probe.close()


def _history_rows(session: Session, binding: Binding | None) -> list[tuple[str, str]]:
    """What the next prompt (from a new cell) would send of the conversation, as ``ask`` trims it."""
    conversation = session.conversation
    window = history_window(session.context_size, session.options.get("ctx_size"),
                            binding.context_size if binding else None)
    reserve = answer_reserve(window, session.options.get("n_predict"))
    count = counter_for(binding) if binding else estimate_tokens
    room = (f"{window - reserve:,} tokens a prompt may use "
            f"({window:,}-token window, {reserve:,} kept for the answer)")
    if not len(conversation):
        return [("history", f"no exchange yet; {room}")]
    fitted = conversation.fit("lollms-status:next", "", window=window, reserve=reserve, count=count)
    kept = conversation.exchanges[len(conversation) - fitted.kept:] if fitted.kept else []
    sent = sum(e.cost(count) for e in kept)
    backends = sorted({e.backend for e in conversation.exchanges})
    held = f"{len(conversation)} exchange(s)" + (f" with {', '.join(backends)}" if backends else "")
    if not fitted.dropped:
        return [("history", f"{held}: the next prompt sends all, ~{sent:,} of the {room}")]
    left = conversation.tokens(count) - sent
    sends = f"the last {fitted.kept}, ~{sent:,} of the {room}" if fitted.kept else "none of them"
    cut = f"{fitted.dropped} older left out (~{left:,} tokens) to fit the {window:,}-token window"
    return [("history", f"{held}: the next prompt sends {sends}; history cut: {cut}")]
