"""Plain text in a cell: whole lines, and one line updated in place.

What the magics print goes out a whole line (or a whole listing) at a time,
and a replayed cell's progress is one plain line rather than a widget, so
that a notebook replayed twice saves the same bytes.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["PlainLine", "replaying", "say"]


def say(*values: object, file: Any = None, sep: str = " ") -> None:
    """``print``, as one write and a flush: one stream message per call.

    ``print`` writes its text and its newline apart, and a kernel sends what
    it holds on a timer, so on a busy machine a line could reach the notebook
    cut in two outputs; the saved notebook then differed from one run to the
    next (a replayed lesson is meant to save the same bytes every time).
    """
    stream = file if file is not None else sys.stdout  # looked up per call: IPython swaps it
    stream.write(sep.join(str(value) for value in values) + "\n")
    stream.flush()


def replaying() -> bool:
    """Whether answers come from a replay file now: outputs must then be the same at every run."""
    from .. import replay

    return isinstance(replay.active(), replay.Player)


class PlainLine:
    """One line of plain text in the cell, updated in place.

    The progress of a replayed cell uses it instead of a widget: a widget
    saves a new random model id at every run, and a notebook replayed twice
    must save the same bytes.
    """

    def __init__(self) -> None:
        self.handle: Any = None

    def show(self, line: str) -> None:
        """Show ``line``, replacing the one shown before."""
        from IPython.display import display

        if self.handle is None:
            self.handle = display({"text/plain": line}, raw=True, display_id=True)  # type: ignore[no-untyped-call]
        else:
            self.handle.update({"text/plain": line}, raw=True)
