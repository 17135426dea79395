"""How a failed prompt fails its cell while showing one line.

IPython shows ``exc._render_traceback_()`` instead of a traceback when an
exception has it, and ipykernel still reports the cell as failed, so Run
All, nbval and papermill stop at it. The message is the error's own line,
which says what to do; ``--debug`` raises the original error instead.
"""

from __future__ import annotations

__all__ = ["CellFailure"]

_RED, _RESET = "\x1b[0;31m", "\x1b[0m"


class CellFailure(Exception):
    """A backend failure, shown as one line; the cell fails."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def _render_traceback_(self) -> list[str]:
        return [f"{_RED}lollms: {self.message}{_RESET}"]
