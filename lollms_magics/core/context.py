"""The cells just run, sent before a prompt (``%%lollms --context N``, ``Session.ask(context=...)``).

A kernel knows the code it executed, in the order it ran, and each cell's
value (``Out``); it does not know Markdown cells, what a cell printed, or the
order of cells on screen. So the context is the last N executed code cells,
their code and their value as text, newest last. ``%lollms`` cells are left
out: their prompts and answers are already the conversation.

The context fits a budget (half of what the prompt may fill, so the
conversation keeps room): the newest cells are kept first, older ones are
left out, and a note says what was cut. A known key anywhere in it is
refused, as in a prompt, naming the cell.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RESULT_LIMIT", "Cell", "context_prompt", "is_lollms_cell", "kernel_cells", "shell_cells"]

RESULT_LIMIT = 2_000  # characters of one cell's value sent; a DataFrame's repr can be huge
_OWN = re.compile(r"^\s*%%?lollms\b|run_(?:cell|line)_magic\(\s*['\"]lollms['\"]")


def is_lollms_cell(code: str) -> bool:
    """Whether ``code`` is a ``%lollms``/``%%lollms`` cell (as typed or as IPython transformed it)."""
    return _OWN.search(code) is not None


@dataclass(frozen=True)
class Cell:
    """One executed cell: its number, its code as typed, and its value as text (None: no value)."""

    number: int
    code: str
    result: str | None = None


def _as_text(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not fail the question
        text = f"<{type(value).__name__}: repr failed: {type(exc).__name__}>"
    if len(text) > RESULT_LIMIT:
        text = text[:RESULT_LIMIT] + f"… [{len(text) - RESULT_LIMIT:,} characters cut]"
    return text


def shell_cells(shell: Any, n: int) -> list[Cell]:
    """The last ``n`` code cells ``shell`` executed before the running one, oldest first.

    Read from its history (the code as typed, ``In``) and its output cache
    (``Out``); ``%lollms`` cells and empty ones are skipped.
    """
    if n <= 0:
        return []
    history = shell.history_manager
    raw: Sequence[str] = history.input_hist_raw
    outputs: dict[int, Any] = history.output_hist
    # The running cell's input is stored before it runs: it is the last one, and not context.
    cells: list[Cell] = []
    for number in range(len(raw) - 2, 0, -1):
        code = raw[number]
        if not code.strip() or is_lollms_cell(code):
            continue
        result = _as_text(outputs[number]) if number in outputs else None
        cells.append(Cell(number, code.rstrip(), result))
        if len(cells) == n:
            break
    return cells[::-1]


def kernel_cells(n: int) -> list[Cell]:
    """:func:`shell_cells` of the running IPython kernel; ``[]`` outside one."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell_cells(shell, n) if shell is not None else []


def _cells(context: Any) -> list[Cell]:
    if isinstance(context, bool):
        raise TypeError("context must be a number of cells, cells or text, not a bool")
    if isinstance(context, int):
        return kernel_cells(context)
    cells = []
    for number, item in enumerate(context, 1):
        if isinstance(item, Cell):
            cells.append(item)
        elif isinstance(item, str):
            cells.append(Cell(number, item))
        else:
            code, result = item
            cells.append(Cell(number, str(code), None if result is None else str(result)))
    return cells


def _block(cell: Cell) -> str:
    text = f"In [{cell.number}]:\n```python\n{cell.code}\n```"
    if cell.result is not None:
        text += f"\nOut[{cell.number}]: {cell.result}"
    return text


_HEAD = "The cells I ran just before this question (code, and the value each returned), oldest first:\n\n"
_TAIL = "\n\n---\n\n"


def context_prompt(
    prompt: str,
    context: Any,
    budget: int,
    count: Callable[[str], int],
    refuse: Callable[[str, str], None],
) -> tuple[str, list[str]]:
    """``prompt`` preceded by ``context``'s cells that fit ``budget`` tokens, and notes on what was cut.

    ``context`` is a number of the kernel's last cells, a sequence of
    :class:`Cell` (or ``(code, result)`` pairs, or code strings), or text sent
    as it is. ``refuse(text, what)`` raises when ``text`` holds a key.
    """
    if isinstance(context, str):
        refuse(context, "the context")
        if not context.strip():
            return prompt, []
        cells = [Cell(0, context)]
        blocks = [context.strip()]
    else:
        cells = _cells(context)
        blocks = [_block(cell) for cell in cells]
        for cell, block in zip(cells, blocks, strict=True):
            refuse(block, f"the context (In [{cell.number}])")
    if not cells:
        wanted = not isinstance(context, int) or context > 0
        return prompt, ["context: no executed cells to send"] if wanted else []
    room = budget - count(_HEAD + _TAIL)
    kept: list[str] = []
    notes: list[str] = []
    for block in reversed(blocks):  # the newest first: they matter most
        size = count(block + "\n\n")
        if size <= room:
            kept.append(block)
            room -= size
            continue
        if not kept and room > 50:  # the newest cell alone is too long: send its start
            share = max(len(block) * room // size - 40, 0)
            kept.append(block[:share] + "\n… [cut to fit the context budget]")
            notes.append(f"context cut: the last cell was cut to fit the {budget:,}-token context budget")
        break
    left = len(blocks) - len(kept)
    if left:
        notes.append(
            f"context cut: {left} older cell(s) of {len(blocks)} left out to fit the {budget:,}-token "
            "context budget"
        )
    if not kept:
        return prompt, notes
    return _HEAD + "\n\n".join(reversed(kept)) + _TAIL + prompt, notes
