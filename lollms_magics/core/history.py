"""The conversation that consecutive prompts hold.

Each exchange (a prompt, its images and its answer) is keyed by the cell (or
caller) that produced it. Asking again from the same key replaces its
exchange in place, and the new prompt sees only the exchanges that came
before it, as when a notebook is run from the top. What is sent is trimmed,
oldest first, to fit the context window, counted with the backend's own
tokenizer where it has a cheap one, else with a conservative estimate; the
caller is told when anything was cut.

An exchange made with tools (``ask(tools=...)``, ``%%lollms --tools``) keeps
its tool steps: the assistant messages that asked for calls and the results
sent back, in order, keys masked and results cut to :data:`HISTORY_RESULTS`
characters in all (:func:`keep_steps`), so a follow-up sees what the
functions returned. They are sent as real messages (assistant ``tool_calls``,
then ``"tool"`` messages, between the prompt and the answer) only when the new
request offers tools itself, which only bindings with a tool API accept; any
other request gets them as a plain note before the answer (``(called
weather(city='Paris') → 22 C and sunny)``): a server or chat template given a
``"tool"`` message without tools may refuse it or drop it, and lollms-webui's
transcript and the embedded model's plain chat have no place for one. The
window counts the steps in the form sent, and an exchange left out takes its
steps with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..images import EncodedImage
from ..replay.tools import call_label
from ..schema import ToolCall

if TYPE_CHECKING:
    from ..bindings.base import Binding
    from .keys import KeyStore

__all__ = [
    "HISTORY_RESULTS", "Conversation", "Exchange", "Fitted", "answer_reserve", "cell_key", "counter_for",
    "estimate_tokens", "history_window", "keep_steps",
]

Counter = Callable[[str], int]
HISTORY_RESULTS = 2_000  # characters of tool results one exchange keeps for the prompts after it


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


def keep_steps(
    messages: Sequence[Mapping[str, Any]], keys: KeyStore | None = None, limit: int = HISTORY_RESULTS
) -> list[dict[str, Any]]:
    """The tool steps of a cell as its exchange keeps them.

    ``messages`` are the loop's: assistant messages with ``tool_calls``, and
    ``"tool"`` messages. Any key ``keys`` knows is masked (the loop refuses
    calls and results holding one, but the model's own words are kept here
    too), and the results together keep at most ``limit`` characters: the
    rest is cut, saying so, each result keeping its message (every call
    must be answered for a server to take the steps back).
    """

    def clean(text: str) -> str:
        return keys.redact(text) if keys is not None and keys.holds_secret(text) else text

    def clean_call(call: ToolCall) -> ToolCall:
        if keys is None or not keys.holds_secret(call.raw + call.name):
            return call
        return ToolCall(call.id, clean(call.name), keys.redact_data(call.arguments), clean(call.raw))  # type: ignore[arg-type]

    kept: list[dict[str, Any]] = []
    left = limit
    for message in messages:
        if message.get("tool_calls"):
            calls = [clean_call(c) for c in message["tool_calls"] if isinstance(c, ToolCall)]
            text = clean(message.get("content") or "")
            kept.append({"role": "assistant", "content": text, "tool_calls": calls})
        elif message.get("role") == "tool":
            text = clean(str(message.get("content") or ""))
            if len(text) > left:
                text = text[:left] + (
                    f"\n[... {len(text) - left} more characters cut from the history: it keeps "
                    f"{limit} characters of tool results per exchange]"
                )
                left = 0
            else:
                left -= len(text)
            kept.append({
                "role": "tool", "tool_call_id": message.get("tool_call_id") or "",
                "name": clean(str(message.get("name") or "")), "content": text,
            })
    return kept


@dataclass
class Exchange:
    """One prompt, the images sent with it, the answer it got, and who answered.

    ``steps`` are the tool calls and results of the exchange, in order (see
    :func:`keep_steps`); ``reply`` is then the text of the last round alone,
    the answer that follows them (``answer`` holds the text of every round).
    """

    key: str
    prompt: str
    answer: str
    images: list[EncodedImage] = field(default_factory=list)
    backend: str = ""  # "binding:model", to notice when the conversation changes hands
    steps: list[dict[str, Any]] = field(default_factory=list)
    reply: str | None = None

    def message_pair(self) -> list[dict[str, Any]]:
        """The prompt and the answer as two messages, the tool steps noted in the answer."""
        return self.messages(tools=False)

    def messages(self, tools: bool = False) -> list[dict[str, Any]]:
        """The exchange as chat messages: its steps as real messages when ``tools``, else as a note."""
        user: dict[str, Any] = {"role": "user", "content": self.prompt}
        if self.images:
            user["images"] = list(self.images)
        if not self.steps:
            return [user, {"role": "assistant", "content": self.answer}]
        if tools:
            reply = self.answer if self.reply is None else self.reply
            steps = [
                {**step, "tool_calls": list(step["tool_calls"])} if step.get("tool_calls") else dict(step)
                for step in self.steps
            ]
            return [user, *steps, {"role": "assistant", "content": reply}]
        note = self.tool_note()
        return [user, {"role": "assistant", "content": f"{note}\n\n{self.answer}" if self.answer else note}]

    def calls(self) -> list[tuple[str, str]]:
        """Each call of the steps as ``(label, what it returned)``, in order."""
        labels: dict[str, str] = {}
        out: list[tuple[str, str]] = []
        for step in self.steps:
            for call in step.get("tool_calls") or ():
                labels[call.id] = call_label(call.name, call.arguments)
            if step.get("role") == "tool":
                label = labels.get(step.get("tool_call_id") or "") or f"{step.get('name') or 'tool'}()"
                out.append((label, str(step.get("content") or "")))
        return out

    def tool_note(self) -> str:
        """The steps as plain text, one ``(called f(x=1) → result)`` line a call."""
        return "\n".join(f"(called {label} → {result})" for label, result in self.calls())

    def cost(self, count: Counter = estimate_tokens, tools: bool = False) -> int:
        """Tokens the exchange takes when sent (``tools``: with its steps as real messages)."""
        total = 0
        for message in self.messages(tools):
            total += count(message["content"])
            for call in message.get("tool_calls") or ():
                total += count(call.name + call.raw)
        return total


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
        return sum(e.cost(count) for e in self.exchanges)

    def fit(
        self,
        key: str,
        prompt: str,
        *,
        window: int,
        reserve: int,
        system: str | None = None,
        count: Counter = estimate_tokens,
        tools: bool = False,
    ) -> Fitted:
        """Messages for ``prompt`` after the earlier exchanges that fit.

        ``window`` is the context size and ``reserve`` the tokens kept for the
        answer. The system prompt and the new prompt always go; earlier
        exchanges are added newest first while they fit (an exchange with
        images goes whole or not at all, its tool steps with it). ``tools``:
        the request offers tools on a binding that takes them, so the steps
        go as real messages (else as a note in the answer).
        """
        budget = window - reserve
        used = count(prompt) + (count(system) if system else 0)
        earlier = self.context(key)
        kept: list[Exchange] = []
        for exchange in reversed(earlier):
            cost = exchange.cost(count, tools)
            if used + cost > budget:
                break
            used += cost
            kept.append(exchange)
        messages: list[dict[str, Any]] = []
        for exchange in reversed(kept):
            messages.extend(exchange.messages(tools))
        messages.append({"role": "user", "content": prompt})
        return Fitted(messages, len(kept), len(earlier) - len(kept), budget)
