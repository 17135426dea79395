"""``%lollms panel NAME``, and ipywidgets loaded only when a panel is built."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from lollms_magics.core.session import Session
from lollms_magics.widgets.chat import ChatPanel
from lollms_magics.widgets.settings import SettingsPanel
from tests.shell import magics_shell


def _modules_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_and_load_ext_do_not_import_ipywidgets():
    loaded = _modules_after(
        "import lollms_magics, lollms_magics.panels\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "InteractiveShell.instance().run_line_magic('load_ext', 'lollms_magics')\n"
        "from lollms_magics.ipython.commands import command\n"
        "assert command('panel') is not None  # the panel command, imported on first use\n"
    )
    assert "lollms_magics.ipython.panel" in loaded  # the probe really loaded the command
    assert not [m for m in loaded if m.split(".")[0] == "ipywidgets"]


def test_building_a_panel_imports_ipywidgets():
    loaded = _modules_after("import lollms_magics\nlollms_magics.panels.settings()")
    assert "ipywidgets" in loaded


@pytest.fixture
def ip(monkeypatch):
    with magics_shell(monkeypatch) as shell:
        yield shell, shell.lollms.session


def shown_panel(cap):
    """The panel object ``display()`` was given (the capture holds its widget view)."""
    views = [o for o in cap.outputs if "application/vnd.jupyter.widget-view+json" in o.data]
    assert len(views) == 1
    return views[0].data["application/vnd.jupyter.widget-view+json"]["model_id"]


@pytest.mark.parametrize("name,cls", [("chat", ChatPanel), ("settings", SettingsPanel), ("", SettingsPanel)])
def test_the_magic_shows_a_panel_on_its_session(ip, monkeypatch, name, cls):
    shell, session = ip
    built = []
    original = cls.__init__

    def spy(self, s=None):
        original(self, s)
        built.append(self)

    monkeypatch.setattr(cls, "__init__", spy)
    with capture_output() as cap:
        shell.run_line_magic("lollms", f"panel {name}".strip())
    assert len(built) == 1 and built[0].session is session
    assert shown_panel(cap) == built[0].widget.model_id


def test_an_unknown_panel_is_a_usage_error(ip):
    shell, _ = ip
    with pytest.raises(UsageError, match=r"^%lollms panel: no panel named 'chart'; the panels are: "
                                         r"settings, chat, image, summarize$"):
        shell.run_line_magic("lollms", "panel chart")


class ThreadedPublisher:
    """ipykernel's display publisher reduced to what routes outputs: a parent message per thread.

    Like ``ZMQDisplayPublisher`` (ipykernel >= 6.29), the parent is a context
    variable set by each execute request, with ``set_thread_parent`` and
    ``reset_thread_parent`` to change it for one thread only.
    """

    def __init__(self, parent: str) -> None:
        import contextvars

        self._parent = contextvars.ContextVar("parent")
        self.current = {"msg_id": parent}  # the cell now running, for threads with no parent of their own
        self.published: list[tuple[str, dict]] = []

    @property
    def parent_header(self) -> dict:
        return self._parent.get(self.current)

    def set_thread_parent(self, parent):
        return self._parent.set(parent)

    def reset_thread_parent(self, token) -> None:
        self._parent.reset(token)

    def publish(self, data, metadata=None, *args, **kwargs) -> None:
        self.published.append((self.parent_header["msg_id"], data))

    def clear_output(self, wait=False) -> None:
        pass


def test_records_go_to_the_cell_that_showed_the_panel(openai_server, monkeypatch):
    from IPython.display import display

    from lollms_magics import panels

    shell = InteractiveShell.instance()
    publisher = ThreadedPublisher("cell-with-the-panel")
    monkeypatch.setattr(shell, "display_pub", publisher)
    session = Session("openai", "test-model", openai_server.url)
    panel = panels.chat(session)
    display(panel)
    publisher.current = {"msg_id": "a-later-cell"}  # the user ran another cell since
    panel.prompt.value = "Hello"
    panel.send.click()
    assert panel.wait(10)
    display("printed by the later cell")
    session.close()
    parents = [parent for parent, _ in publisher.published]
    # the panel, then its exchange (shown at once, updated as it streams), then the later cell's own output
    assert parents[0] == "cell-with-the-panel" and parents[-1] == "a-later-cell"
    assert len(parents) >= 3 and set(parents[1:-1]) == {"cell-with-the-panel"}
    view, record, later = (data for _, data in (publisher.published[0], *publisher.published[-2:]))
    assert "application/vnd.jupyter.widget-view+json" in view
    assert "Echo: Hello" in record["text/markdown"]  # the exchange's record, in the panel's cell
    assert later["text/plain"] == "'printed by the later cell'"  # main-thread outputs stay where they are


def test_a_panel_returned_by_python_shows_as_the_cells_value(openai_server):
    shell = InteractiveShell.instance()
    with capture_output() as cap:
        shell.run_cell("from lollms_magics import panels\npanels.settings()")
    views = [o for o in cap.outputs if "application/vnd.jupyter.widget-view+json" in o.data]
    assert len(views) == 1
