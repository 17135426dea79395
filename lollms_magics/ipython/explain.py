"""``%lollms explain`` and ``%lollms fix``: the last failing cell, its exception and a trimmed traceback.

What is sent: the failing cell's code as typed, the exception's type and
message, and the last frames of the traceback (file, line, function, the
line's code). Local variables' values are never read: the frames are
summarized without them. ``fix`` asks for the corrected cell and offers it
as the next cell, as ``-f code`` does.

Failing cells are watched from ``%load_ext`` on (IPython's ``post_run_cell``
event); an error raised before that is found through ``sys.last_exc``.
``%lollms`` cells' own failures are not "the last error": they are about
the assistant, not the user's code.
"""

from __future__ import annotations

import shlex
import sys
import traceback
import weakref
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

from ..core.context import is_lollms_cell
from ..errors import PromptError
from .commands import COMMANDS, Command, Magics
from .plain import say

__all__ = ["Failure", "last_failure", "watch"]

FRAMES = 6  # the frames nearest the error: where it happened, and what led there
CODE_LIMIT = 6_000
MESSAGE_LIMIT = 1_000

_failures: weakref.WeakKeyDictionary[Any, Failure] = weakref.WeakKeyDictionary()
_watched: weakref.WeakSet[Any] = weakref.WeakSet()


@dataclass(frozen=True)
class Failure:
    """A cell that raised: its number (None when unknown), its code, and the error as text."""

    number: int | None
    code: str
    error: str


def _trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit:,} characters cut]"


def _cell_names(shell: Any) -> dict[str, int]:
    names = getattr(getattr(shell, "compile", None), "_filename_map", None)
    return dict(names) if isinstance(names, dict) else {}


def describe_error(exc: BaseException, shell: Any) -> str:
    """The exception and its last :data:`FRAMES` frames as text, without any local variable's value."""
    cells = _cell_names(shell)
    frames = traceback.extract_tb(exc.__traceback__)  # FrameSummary: no locals unless asked
    shown = frames[-FRAMES:]
    lines = []
    if len(frames) > len(shown):
        lines.append(f"  ... {len(frames) - len(shown)} earlier frame(s) left out")
    for frame in shown:
        where = f"In [{cells[frame.filename]}]" if frame.filename in cells else frame.filename
        lines.append(f"  {where}, line {frame.lineno}, in {frame.name}")
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    message = _trim(str(exc), MESSAGE_LIMIT)
    name = type(exc).__qualname__
    return "Traceback (most recent call last):\n" + "\n".join(lines) + f"\n{name}: {message}".rstrip(": ")


def _failure(shell: Any, exc: BaseException, number: int | None, code: str | None) -> Failure:
    if code is None:  # found through sys.last_exc: the cell is the one its frames name
        cells = _cell_names(shell)
        numbers = [cells[f.filename] for f in traceback.extract_tb(exc.__traceback__) if f.filename in cells]
        raw = shell.history_manager.input_hist_raw
        number = numbers[0] if numbers else None
        code = raw[number] if number is not None and number < len(raw) else ""
    return Failure(number, _trim(code.rstrip(), CODE_LIMIT), describe_error(exc, shell))


def watch(shell: Any) -> None:
    """Keep ``shell``'s last failing cell (once per shell)."""
    if shell is None or shell in _watched:
        return
    _watched.add(shell)
    ref = weakref.ref(shell)

    def after(result: Any) -> None:
        exc = result.error_in_exec or result.error_before_exec
        watched = ref()
        info = getattr(result, "info", None)
        code = getattr(info, "raw_cell", "") or ""
        if exc is None or watched is None or is_lollms_cell(code):
            return
        number = result.execution_count if getattr(info, "store_history", False) else None
        _failures[watched] = _failure(watched, exc, number, code)

    shell.events.register("post_run_cell", after)


def last_failure(shell: Any) -> Failure | None:
    """The last cell of ``shell`` that raised (not a ``%lollms`` cell), or None."""
    found = _failures.get(shell)
    if found is not None:
        return found
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if exc is None:
        return None
    failure = _failure(shell, exc, None, None)
    return None if is_lollms_cell(failure.code) else failure


def _prompt(failure: Failure, fix: bool) -> str:
    cell = f"In [{failure.number}]" if failure.number is not None else "A notebook cell"
    ask = (
        "Give the corrected cell, whole, in one Python code block, then say in one sentence what changed."
        if fix else
        "Explain briefly what went wrong and why, then how to fix it."
    )
    code = f"```python\n{failure.code}\n```" if failure.code else "(its code is not known)"
    return f"{cell} failed. {ask}\n\nThe cell:\n{code}\n\nThe error:\n```\n{failure.error}\n```"


def _ask(magics: Magics, args: Any, fix: bool) -> None:
    shell = getattr(magics, "shell", None)
    failure = last_failure(shell)
    if failure is None:
        say("lollms: no cell has failed yet; run the failing cell, then %lollms explain or %lollms fix")
        return
    prompt = _prompt(failure, fix)
    where = f"In [{failure.number}]" if failure.number is not None else "the failing cell"
    try:
        magics.session.keys.refuse(prompt, f"{where} (its code or its error)")
    except PromptError as exc:
        raise UsageError(f"%lollms: {exc}") from None
    line = ["--raw"]  # code and tracebacks are full of braces: sent as they are
    for flag, value in (("-b", args.binding), ("-m", args.model), ("--host", args.host)):
        if value:
            line += [flag, shlex.quote(value)]
    if fix:
        line += ["-f", "code"]
    magics.ask(" ".join(line), prompt)  # type: ignore[attr-defined]  # LollmsMagics


def _explain(magics: Magics, args: Any, cell: str | None) -> None:
    _ask(magics, args, fix=False)


def _fix(magics: Magics, args: Any, cell: str | None) -> None:
    _ask(magics, args, fix=True)


_OPTIONS = ("binding", "model", "host")
COMMANDS["explain"] = Command(
    _explain, (0, 0), "%lollms explain [-b BINDING] [-m MODEL]",
    "explain the last failing cell (its code, the exception, a trimmed traceback; no variable's value)",
    _OPTIONS,
)
COMMANDS["fix"] = Command(
    _fix, (0, 0), "%lollms fix [-b BINDING] [-m MODEL]",
    "ask for the last failing cell corrected, offered as the next cell", _OPTIONS,
)
