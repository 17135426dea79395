"""The panels, from Python: ``panels.settings()``, ``.chat()``, ``.image()``, ``.summarize()``.

::

    from lollms_magics import panels
    panels.settings()      # as the last expression of a cell: the panel shows

Each function builds a panel on ``session`` (default: the kernel's, the one
the magics use) and returns it; a panel shows when displayed (the last
expression of a cell, or ``display(panel)``), its widgets in ``.widget``.
``%lollms panel NAME`` does the same. ipywidgets is imported here only
when a panel is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .widgets import PANELS, open_panel

if TYPE_CHECKING:
    from .core.session import Session
    from .widgets.chat import ChatPanel
    from .widgets.image import ImagePanel
    from .widgets.settings import SettingsPanel
    from .widgets.summarize import SummarizePanel

__all__ = ["PANELS", "chat", "image", "open_panel", "settings", "summarize"]

def settings(session: Session | None = None) -> SettingsPanel:
    """The settings panel: binding, host, API key, model and options; Use makes them the default."""
    return open_panel("settings", session)  # type: ignore[return-value]


def chat(session: Session | None = None) -> ChatPanel:
    """The chat panel: the conversation, a prompt, Send and Stop, image attachments."""
    return open_panel("chat", session)  # type: ignore[return-value]


def image(session: Session | None = None) -> ImagePanel:
    """The image panel: prompt, size, seed, steps, the service's settings, Generate, Stop, Save."""
    return open_panel("image", session)  # type: ignore[return-value]


def summarize(session: Session | None = None) -> SummarizePanel:
    """The summarize panel: a file, path or variable, mode, instruction, progress, Stop, the result."""
    return open_panel("summarize", session)  # type: ignore[return-value]
