"""``%lollms panel [settings|chat|image|summarize]``: show a panel on the magics' session.

The panels themselves live in :mod:`lollms_magics.widgets` (see
:mod:`lollms_magics.panels` from Python); this command only opens one under the cell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .commands import COMMANDS, Command

if TYPE_CHECKING:
    from .magics import LollmsMagics

__all__: list[str] = []


def _panel(magics: LollmsMagics, args: Any, cell: str | None) -> None:
    from IPython.display import display

    from .. import widgets as panels

    name = args.words[0] if args.words else "settings"
    if name not in panels.PANELS:
        known = ", ".join(panels.PANELS)
        raise UsageError(f"%lollms panel: no panel named {name!r}; the panels are: {known}")
    display(panels.open_panel(name, magics.session))  # type: ignore[no-untyped-call]


COMMANDS["panel"] = Command(
    _panel, (0, 1), "%lollms panel [settings|chat|image|summarize]",
    "open a panel (widgets) on this kernel's session",
)
