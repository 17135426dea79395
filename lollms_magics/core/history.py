"""The conversation that consecutive prompts hold.

Each exchange (a prompt, its images and its answer) is keyed by the cell (or
caller) that produced it. Asking again from the same key replaces its
exchange in place, and the new prompt sees only the exchanges that came
before it, as when a notebook is run from the top. What is sent is trimmed,
oldest first, to fit the context window, counted with the backend's own
tokenizer where it has a cheap one, else with a conservative estimate; the
caller is told when anything was cut.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..images import EncodedImage

if TYPE_CHECKING:
    from ..bindings.base import Binding

__all__ = [
    "Conversation", "Exchange", "Fitted", "answer_reserve", "cell_key", "counter_for", "estimate_tokens",
    "history_window",
]

Counter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """A token count that errs on the high side: three characters a token.

    English runs about four characters a token and code about three, so this
    overcounts rather than overflows the window.
    """
    return len(text) // 3 + 1


def history_window(context_size: int, ctx_size: int | None, known: int | None) -> int:
    """The window a prompt, its history and its answer share.

    The session's ``context_size``, or less: the ``ctx_size`` option when
    given, else the window the backend is known to have.
    """
    return min(context_size, ctx_size or known or context_size)


def answer_reserve(window: int, n_predict: int | None) -> int:
    """Tokens of ``window`` kept for the answer: ``n_predict``, else a quarter; never more than half."""
    return min(n_predict or window // 4, window // 2)


def counter_for(binding: Binding | None) -> Counter:
    """The cheapest faithful token counter for ``binding``: its own local tokenizer, else the estimate."""
    if binding is None or not binding.local_tokenizer:
        return estimate_tokens
    tokenize = binding.tokenize

    def count(text: str) -> int:
        tokens = tokenize(text)
        return len(tokens) if tokens is not None else estimate_tokens(text)

    return count


def cell_key(shell: Any, text: str) -> str:
    """What identifies the running cell: its notebook cell id when the frontend sends one.

    JupyterLab, Notebook 7 and VS Code put ``cellId`` in the execute request's
    metadata; elsewhere (terminal, nbclient without ids) the cell's text is the key.
    """
    header = getattr(shell, "parent_header", None)
    if not isinstance(header, dict):
        kernel = getattr(shell, "kernel", None)
        header = kernel.get_parent() if kernel is not None and hasattr(kernel, "get_parent") else None
    metadata = header.get("metadata") if isinstance(header, dict) else None
    cell_id = metadata.get("cellId") if isinstance(metadata, dict) else None
    return f"cell:{cell_id}" if cell_id else f"text:{text}"


@dataclass
class Exchange:
    """One prompt, the images sent with it, the answer it got, and who answered."""

    key: str
    prompt: str
    answer: str
    images: list[EncodedImage] = field(default_factory=list)
    backend: str = ""  # "binding:model", to notice when the conversation changes hands

    def message_pair(self) -> list[dict[str, Any]]:
        user: dict[str, Any] = {"role": "user", "content": self.prompt}
        if self.images:
            user["images"] = list(self.images)
        return [user, {"role": "assistant", "content": self.answer}]


@dataclass
class Fitted:
    """The messages to send, and what had to be left out to fit the window."""

    messages: list[dict[str, Any]]
    kept: int  # earlier exchanges sent
    dropped: int  # earlier exchanges left out
    budget: int  # tokens the prompt and history could use


class Conversation:
    """The exchanges of a session's conversation, in notebook order."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def __len__(self) -> int:
        return len(self.exchanges)

    def clear(self) -> None:
        """Forget every exchange."""
        self.exchanges.clear()

    def context(self, key: str) -> list[Exchange]:
        """The exchanges a prompt from ``key`` follows: those before that key's own."""
        for index, exchange in enumerate(self.exchanges):
            if exchange.key == key:
                return self.exchanges[:index]
        return list(self.exchanges)

    def record(self, exchange: Exchange, *, keep: int) -> None:
        """Store ``exchange``, replacing the one its key made before; keep the last ``keep``."""
        for index, old in enumerate(self.exchanges):
            if old.key == exchange.key:
                self.exchanges[index] = exchange
                break
        else:
            self.exchanges.append(exchange)
        if keep >= 0 and len(self.exchanges) > keep:
            del self.exchanges[: len(self.exchanges) - keep]

    def tokens(self, count: Counter = estimate_tokens) -> int:
        """Tokens the whole conversation holds, counted with ``count``."""
        return sum(count(e.prompt) + count(e.answer) for e in self.exchanges)

    def fit(
        self,
        key: str,
        prompt: str,
        *,
        window: int,
        reserve: int,
        system: str | None = None,
        count: Counter = estimate_tokens,
    ) -> Fitted:
        """Messages for ``prompt`` after the earlier exchanges that fit.

        ``window`` is the context size and ``reserve`` the tokens kept for the
        answer. The system prompt and the new prompt always go; earlier
        exchanges are added newest first while they fit (an exchange with
        images goes whole or not at all).
        """
        budget = window - reserve
        used = count(prompt) + (count(system) if system else 0)
        earlier = self.context(key)
        kept: list[Exchange] = []
        for exchange in reversed(earlier):
            cost = count(exchange.prompt) + count(exchange.answer)
            if used + cost > budget:
                break
            used += cost
            kept.append(exchange)
        messages: list[dict[str, Any]] = []
        for exchange in reversed(kept):
            messages.extend(exchange.message_pair())
        messages.append({"role": "user", "content": prompt})
        return Fitted(messages, len(kept), len(earlier) - len(kept), budget)
