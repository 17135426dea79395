"""The tests' IPython shell with fresh ``%lollms`` magics, made in one place.

Each test file's ``ip`` (or ``shell``) fixture is one ``with magics_shell(...)``
around its own extras (a tape stopped, a memory cleared): which variables it
clears, whether it loads the extension and which session its magics get stay
written in the file, where its tests are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

import pytest
from IPython.core.interactiveshell import InteractiveShell

from lollms_magics.core.session import Session
from lollms_magics.ipython.magics import LollmsMagics

# The magics' own choice of backend: cleared by nearly every fixture, so the
# machine running the tests cannot pick the backend a test talks to.
CHOICE = ("LOLLMS_MAGICS_BINDING", "LOLLMS_MAGICS_MODEL", "LOLLMS_MAGICS_HOST")


@contextmanager
def magics_shell(
    monkeypatch: pytest.MonkeyPatch,
    *,
    unset: Iterable[str] = (),
    setenv: Mapping[str, str] | None = None,
    load_ext: bool = False,
    session: Session | Literal["kernel"] | None = None,
    **options: Any,
) -> Iterator[Any]:
    """The shell, with a fresh ``LollmsMagics`` registered (also as ``shell.lollms``).

    ``unset`` variables are cleared and ``setenv`` ones set (through
    ``monkeypatch``, so both come back after the test); a ``%config
    LollmsMagics`` left by an earlier test is dropped before and after.
    ``session``: None makes a fresh ``Session()``; a Session is used as given;
    ``"kernel"`` gives none, so the magics use the kernel's default session as
    after ``%load_ext`` (and it is not closed here). ``options`` go to
    ``LollmsMagics``; ``footer`` is off unless given, since most tests compare
    answers whole and the footer is tested on its own. At the end the session
    is closed and the magics leave the shell's configurables.
    """
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    for name, value in (setenv or {}).items():
        monkeypatch.setenv(name, value)
    shell: Any = InteractiveShell.instance()  # typed loosely: the tests set shell.lollms
    shell.config.pop("LollmsMagics", None)
    if load_ext and "lollms_magics" not in shell.extension_manager.loaded:
        shell.run_line_magic("load_ext", "lollms_magics")
    own = None if session == "kernel" else session if isinstance(session, Session) else Session()
    options.setdefault("footer", False)
    magics = LollmsMagics(shell=shell, session=own, **options)
    shell.register_magics(magics)
    shell.lollms = magics  # for the tests' convenience
    try:
        yield shell
    finally:
        if own is not None:
            own.close()
        if magics in shell.configurables:  # a test may have removed them itself
            shell.configurables.remove(magics)
        shell.config.pop("LollmsMagics", None)
