"""The conversation that consecutive ``%%lollms`` cells hold.

Each exchange (a prompt and its answer) is keyed by the cell that produced
it. Running a cell again replaces its exchange in place, and the new prompt
sees only the exchanges that came before it, as when the notebook is run
from the top. What is sent is trimmed, oldest first, to fit the context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Conversation", "Exchange", "cell_key", "estimate_tokens"]


def estimate_tokens(text: str) -> int:
    """A cheap token estimate (about four characters a token for English and code)."""
    return len(text) // 4 + 1


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
    """One prompt and the answer it got."""

    key: str
    prompt: str
    answer: str


class Conversation:
    """The exchanges of the kernel's conversation, in notebook order."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def __len__(self) -> int:
        return len(self.exchanges)

    def clear(self) -> None:
        """Forget every exchange."""
        self.exchanges.clear()

    def context(self, key: str) -> list[Exchange]:
        """The exchanges a prompt from cell ``key`` follows: those before that cell's own."""
        for index, exchange in enumerate(self.exchanges):
            if exchange.key == key:
                return self.exchanges[:index]
        return list(self.exchanges)

    def record(self, key: str, prompt: str, answer: str, *, keep: int) -> None:
        """Store an exchange, replacing the one cell ``key`` made before; keep the last ``keep``."""
        new = Exchange(key, prompt, answer)
        for index, exchange in enumerate(self.exchanges):
            if exchange.key == key:
                self.exchanges[index] = new
                break
        else:
            self.exchanges.append(new)
        if keep >= 0 and len(self.exchanges) > keep:
            del self.exchanges[: len(self.exchanges) - keep]

    def messages(
        self, key: str, prompt: str, *, budget: int, system: str | None = None
    ) -> list[dict[str, str]]:
        """Chat messages for ``prompt`` after the earlier exchanges that fit in ``budget`` tokens.

        The system prompt and the new prompt always go; earlier exchanges are
        added newest first while their estimate fits.
        """
        used = estimate_tokens(prompt) + (estimate_tokens(system) if system else 0)
        kept: list[Exchange] = []
        for exchange in reversed(self.context(key)):
            cost = estimate_tokens(exchange.prompt) + estimate_tokens(exchange.answer)
            if used + cost > budget:
                break
            used += cost
            kept.append(exchange)
        messages: list[dict[str, str]] = []
        for exchange in reversed(kept):
            messages.append({"role": "user", "content": exchange.prompt})
            messages.append({"role": "assistant", "content": exchange.answer})
        messages.append({"role": "user", "content": prompt})
        return messages
