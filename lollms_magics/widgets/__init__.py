"""Point-and-click panels over the kernel's Session (ipywidgets).

Each panel works on a :class:`~lollms_magics.core.session.Session`, by
default the kernel's (:func:`~lollms_magics.core.session.default_session`),
so what a panel chooses the next ``%%lollms`` cell uses, and the other way
round. One module per panel: :mod:`.settings` (binding, host, key, model,
options), :mod:`.chat`, :mod:`.image`, :mod:`.summarize`; :mod:`.common`
holds what they share (the record left in the cell's output, the worker
thread), :mod:`.form` the form built from a server's settings template.
Open them with ``%lollms panel NAME`` or :mod:`lollms_magics.panels`.

ipywidgets is imported when a panel is first built, never on import: this
package and its modules load nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import InvalidOptionError

if TYPE_CHECKING:
    from ..core.session import Session
    from .common import Panel

__all__ = ["PANELS", "open_panel"]

# Panel name -> "module:class" in this package.
PANELS: dict[str, str] = {
    "settings": "settings:SettingsPanel",
    "chat": "chat:ChatPanel",
    "image": "image:ImagePanel",
    "summarize": "summarize:SummarizePanel",
}


def open_panel(name: str, session: Session | None = None) -> Panel:
    """Build the panel called ``name`` (one of :data:`PANELS`) on ``session``."""
    target = PANELS.get(name)
    if target is None:
        raise InvalidOptionError(f"no panel named {name!r}; the panels are: {', '.join(PANELS)}")
    module, _, cls = target.partition(":")
    panel: Panel = getattr(importlib.import_module(f"{__name__}.{module}"), cls)(session)
    return panel
