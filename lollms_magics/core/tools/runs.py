"""What the tool loop reports: a :class:`ToolRun` per call, a :class:`ToolEvent` as calls start and end."""

from __future__ import annotations

import ctypes
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ...schema import ToolCall

__all__ = ["RESULT_BUDGET", "Approval", "ToolEvent", "ToolRun", "ToolSteps", "as_text", "raise_in"]

RESULT_BUDGET = 4000  # characters of one result sent back to the model
Approval = Callable[[ToolCall], bool] | Literal["yes"] | bool | None


@dataclass
class ToolRun:
    """What became of one call the model asked for.

    ``refused`` says why it did not run (no such tool, invalid arguments, not
    approved...), else ``approved`` is True and the function ran: ``result``
    is the text sent back (trimmed: ``trimmed``), or ``error`` the exception
    it raised, as the model read it. ``stopped`` when Stop ended it.
    ``round`` counts the model's rounds of calls from 1.
    """

    call: ToolCall
    result: str | None = None
    error: str | None = None
    approved: bool = False
    refused: str | None = None
    round: int = 1
    duration: float | None = None
    trimmed: bool = False
    stopped: bool = False

    @property
    def sent(self) -> str:
        """The tool message's content, as the model receives it."""
        if self.refused is not None:
            return f"Error: this call was refused: {self.refused}"
        if self.error is not None:
            return f"Error: {self.error}"
        return self.result if self.result is not None else ""


@dataclass(frozen=True)
class ToolEvent:
    """What ``on_tool`` hears: ``"start"`` just before an approved call runs, ``"end"`` after every call.

    A refused call has only its ``"end"``. ``run`` is the same object both
    times, filled in by the end.
    """

    kind: Literal["start", "end"]
    run: ToolRun


@dataclass
class ToolSteps:
    """The messages a tool loop added between the prompt and the answer (``response.tool_steps``).

    ``messages`` are the assistant messages that asked for calls (their
    ``tool_calls`` are :class:`ToolCall`) and the ``"tool"`` messages of the
    results, as sent; ``reply`` is the text of the last round, the answer
    after them. The conversation keeps them (:func:`~lollms_magics.core.history.keep_steps`).
    """

    messages: list[dict[str, Any]] = field(default_factory=list)
    reply: str = ""


def as_text(value: Any) -> str:
    """A function's value as the model reads it."""
    if isinstance(value, str):
        return value
    if value is None:
        return "(no value returned)"
    if isinstance(value, (dict, list, tuple, int, float, bool)):
        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            pass
    return str(value)


def raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in thread ``thread_id`` at its next line of Python (None: drop a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )
