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

__all__: list[str] = []
