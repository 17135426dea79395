"""What the panels share: ipywidgets on demand, the record left in the cell, the worker thread.

A panel's widgets live only while a kernel runs; GitHub, nbviewer and other
static viewers drop widget views. So every panel action also leaves plain
Markdown (or pictures) in the cell's output: its :class:`Record`. Actions
run after the cell that showed the panel has finished (in a button's
callback, or a worker thread), when a plain ``display()`` would reach no
cell; the record sends its outputs with the parent message of the cell that
showed the panel, which the frontend still routes into that cell.

Long work (a streamed answer, pictures, a summary) runs in a :class:`Worker`
thread, so the kernel keeps running other cells meanwhile.
"""

from __future__ import annotations

import html
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from ..core.session import default_session
from ..errors import LollmsMagicsError, MissingDependencyError

if TYPE_CHECKING:
    from ..core.session import Session

__all__ = ["Panel", "Record", "Throttle", "Worker", "load_ipywidgets", "markdown_bundle"]


def load_ipywidgets() -> Any:
    """The ipywidgets module, imported now (panels only need it when first built)."""
    try:
        import ipywidgets
    except ImportError as exc:
        raise MissingDependencyError("the panels need ipywidgets: pip install ipywidgets") from exc
    return ipywidgets


def markdown_bundle(text: str) -> dict[str, Any]:
    """The mime bundle of a Markdown record (with its plain-text twin)."""
    return {"text/markdown": text, "text/plain": text}


def _shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    return InteractiveShell.instance() if InteractiveShell.initialized() else None


class Record:
    """The outputs a panel leaves in the cell that showed it."""

    def __init__(self) -> None:
        self._parent: Any = None  # the request of the cell that showed the panel
        self._named: dict[str, str] = {}  # replace= name -> the display id of its output
        self.shown = 0  # outputs displayed, for the tests

    def bind(self) -> None:
        """Remember the cell now running (call it when the panel is displayed)."""
        shell = _shell()
        getter = getattr(shell, "get_parent", None)  # ipykernel's shell: the cell's request
        if callable(getter):
            parent = getter()
        else:
            parent = getattr(getattr(shell, "display_pub", None), "parent_header", None)
        self._parent = parent or None

    @contextmanager
    def _in_cell(self) -> Iterator[None]:
        # ipykernel keeps the parent message per thread (a context variable), with
        # set_thread_parent on the shell (every output stream) or on its display
        # publisher: setting it here routes this thread's outputs to the panel's cell only.
        shell = _shell()
        for owner in (shell, getattr(shell, "display_pub", None)):
            setter = getattr(owner, "set_thread_parent", None)
            resetter = getattr(owner, "reset_thread_parent", None)
            if self._parent is not None and callable(setter) and callable(resetter):
                token = setter(self._parent)
                try:
                    yield
                finally:
                    resetter(token)
                return
        yield

    def show(
        self, data: dict[str, Any], metadata: dict[str, Any] | None = None, *, replace: str | None = None
    ) -> None:
        """Display ``data`` (a mime bundle) under the panel.

        With ``replace``, the output shown before under that name is updated in
        place (one output, however many times it is shown: a panel's state,
        not a log), and the saved notebook keeps the last version.
        """
        from IPython.display import display

        update = replace is not None and replace in self._named
        if replace is not None and not update:
            self._named[replace] = f"lollms-{uuid.uuid4().hex}"
        named = {"display_id": self._named[replace], "update": update} if replace is not None else {}
        with self._in_cell():
            display(data, raw=True, metadata=metadata or {}, **named)  # type: ignore[no-untyped-call]
        self.shown += 1

    def markdown(
        self, text: str, metadata: dict[str, Any] | None = None, *, replace: str | None = None
    ) -> None:
        """Display ``text`` as Markdown under the panel (``replace``: as for :meth:`show`)."""
        self.show(markdown_bundle(text), metadata, replace=replace)


class Throttle:
    """True at most once every ``interval`` seconds: bounds the updates sent to the browser."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.interval
        return True


class Worker:
    """Runs one job at a time in a daemon thread; ``on_error`` hears what the job did not catch."""

    def __init__(self, name: str, on_error: Callable[[BaseException], None]) -> None:
        self.name = name
        self.on_error = on_error
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, job: Callable[[], None]) -> bool:
        """Start ``job``; False (and nothing started) while another job runs."""
        if self.busy:
            return False

        def run() -> None:
            try:
                job()
            except BaseException as exc:  # a thread's error reaches nobody otherwise
                self.on_error(exc)

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running job; True when none runs any more."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.busy


class Panel:
    """Base of the panels: the session, the widgets, the status line, the record, the worker."""

    kind: ClassVar[str] = ""

    def __init__(self, session: Session | None = None) -> None:
        self.session = session or default_session()
        self.w = load_ipywidgets()
        self.record = Record()
        self.status = self.w.HTML(value="")
        self.worker = Worker(f"lollms-{self.kind}-panel", self._unexpected)
        self.widget = self.w.VBox(self._build(), layout=self.w.Layout(max_width="900px"))
        self.widget.add_class("lollms-panel")
        self.widget.add_class(f"lollms-{self.kind}")

    def _build(self) -> list[Any]:
        raise NotImplementedError

    def say(self, message: str, *, error: bool = False) -> None:
        """Show one line (redacted) in the panel's status line."""
        text = html.escape(self.session.keys.redact(message))
        color = "#b00020" if error else "#555"
        self.status.value = f'<span style="color:{color}">{text}</span>' if text else ""

    def fail(self, exc: BaseException) -> None:
        """Show a failure: a library error's own line, else its type and message."""
        if isinstance(exc, LollmsMagicsError):
            self.say(str(exc), error=True)
        else:
            self.say(f"unexpected error: {type(exc).__name__}: {exc}", error=True)

    def _unexpected(self, exc: BaseException) -> None:
        self.fail(exc)

    def wait(self, timeout: float | None = 30.0) -> bool:
        """Wait for the panel's running job (tests, scripts); True when it has ended."""
        return self.worker.wait(timeout)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        self.record.bind()
        display(self.widget)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Close the panel's widgets (their views disappear)."""
        _close(self.widget)


def _close(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close(child)
    widget.close()
