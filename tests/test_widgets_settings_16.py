"""The settings panel as a user finds it (issue 16), driven in the kernel against loopback servers.

The model in use kept, the list filled at once, one settings line, no key
field for a backend that takes none.
"""

from __future__ import annotations

import socket
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from lollms_magics import panels
from lollms_magics.core.session import Session

KEY = "sk-typed-for-openai-0123456789"


@pytest.fixture
def session(monkeypatch):
    for name in ("LOLLMS_MAGICS_BINDING", "LOLLMS_MAGICS_MODEL", "LOLLMS_MAGICS_HOST", "OPENAI_API_KEY",
                 "OLLAMA_HOST"):
        monkeypatch.delenv(name, raising=False)
    InteractiveShell.instance()
    s = Session()
    yield s
    s.close()


@pytest.fixture
def ollama(ollama_server):
    ollama_server.models = ["fast:latest", "slow:latest"]  # the one in use is not the first listed
    return ollama_server


def entries(panel):
    """The model list as the user sees it: (label, value) pairs."""
    return list(panel.model.options)


def label(panel):
    return dict((value, text) for text, value in panel.model.options)[panel.model.value]


def refresh(panel):
    panel.refresh.click()
    assert panel.wait(10)


def test_refresh_keeps_the_model_in_use_when_the_server_lists_it_with_its_tag(session, ollama):
    session.use("ollama", "slow", ollama.url)
    panel = panels.settings(session)
    assert panel.wait(10)
    refresh(panel)
    assert panel.model.value == "slow"  # not "fast:latest", the first one listed
    assert label(panel) == "slow:latest"  # shown as the server names it
    assert [text for text, _ in entries(panel)] == ["the server's default", "fast:latest", "slow:latest"]
    with capture_output():
        panel.use.click()
    assert session.configured().model == "slow"  # Use after Refresh changed nothing


def test_refresh_matches_the_model_in_use_whatever_its_case(session, ollama):
    session.use("ollama", "SLOW", ollama.url)
    panel = panels.settings(session)
    refresh(panel)
    assert (panel.model.value, label(panel)) == ("SLOW", "slow:latest")


def test_a_model_in_use_that_the_server_does_not_list_stays_selected(session, ollama):
    session.use("ollama", "gone-model", ollama.url)
    panel = panels.settings(session)
    refresh(panel)
    assert panel.model.value == "gone-model"
    assert entries(panel)[-1] == ("gone-model (in use; not listed by the server)", "gone-model")
    assert "ollama: 2 model(s)" in panel.status.value


def test_the_model_list_is_filled_when_the_panel_opens(session, ollama):
    session.use("ollama", "slow", ollama.url)
    panel = panels.settings(session)  # no click
    assert panel.wait(10)
    assert [text for text, _ in entries(panel)] == ["the server's default", "fast:latest", "slow:latest"]
    assert panel.model.value == "slow"
    assert ollama.requests_to("/api/tags")


def test_the_panel_shows_at_once_while_the_server_keeps_it_waiting(session):
    with socket.socket() as silent:  # accepts connections (in its backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        session.use("ollama", "slow", url)
        started = time.monotonic()
        panel = panels.settings(session)
        assert time.monotonic() - started < 3.0  # the listing waits in its thread, not here
        assert "asking ollama for its models" in panel.status.value or panel.worker.busy
        assert not panel.wait(0.2)  # still waiting for the server
    assert panel.wait(15)


def test_a_server_that_does_not_answer_at_opening_is_said_in_the_status_line(session):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    session.use("openai", "test-model", f"http://127.0.0.1:{port}")
    panel = panels.settings(session)  # raises nothing in the cell
    assert panel.wait(15)
    assert "could not list the models: cannot reach openai" in panel.status.value
    assert "#b00020" in panel.status.value
    assert panel.model.value == "test-model"  # the model in use is not lost either


def test_a_refresh_during_the_opening_listing_is_not_lost(session, ollama, openai_server):
    session.use("ollama", "slow", ollama.url)
    panel = panels.settings(session)
    panel.binding.value, panel.host.value = "openai", openai_server.url  # before the first list came
    refresh(panel)
    assert [v for _, v in panel.model.options] == ["", "test-model", "vision-model"]
    assert "openai: 2 model(s)" in panel.status.value


def test_each_use_updates_one_settings_line(session, openai_server):
    panel = panels.settings(session)
    panel.binding.value, panel.host.value = "openai", openai_server.url
    _, tick, box = panel.options["temperature"]
    with capture_output() as cap:
        panel.use.click()
        tick.value, box.value = True, 0.3
        panel.use.click()
        panel.use.click()
    ids = {out.transient.get("display_id") for out in cap.outputs}
    assert len(ids) == 1 and None not in ids  # one output, shown then updated in place
    assert [out.update for out in cap.outputs] == [False, True, True]
    last = cap.outputs[-1].data["text/markdown"]
    assert last.startswith("**lollms settings**: `openai`") and "temperature=0.3" in last


def test_a_second_panel_has_its_own_settings_line(session, openai_server):
    first, second = panels.settings(session), panels.settings(session)
    with capture_output() as cap:
        first.use.click()
        second.use.click()
    assert [out.update for out in cap.outputs] == [False, False]
    assert cap.outputs[0].transient["display_id"] != cap.outputs[1].transient["display_id"]


def test_a_backend_without_keys_has_no_key_field(session):
    panel = panels.settings(session)
    panel.binding.value = "ollama"
    assert panel.key.disabled
    assert panel.key.placeholder == "ollama needs no API key"
    panel.binding.value = "openai"
    assert not panel.key.disabled


def test_a_key_typed_before_choosing_ollama_is_not_kept_nor_announced(session, ollama):
    panel = panels.settings(session)
    panel.binding.value = "openai"
    panel.key.value = KEY
    panel.binding.value, panel.host.value = "ollama", ollama.url
    assert "ollama needs no API key" in panel.status.value
    with capture_output() as cap:
        panel.use.click()
    record = cap.outputs[-1].data["text/markdown"]
    assert "API key typed" not in record and "ollama needs no API key" in record
    assert "ollama" not in session.keys and "openai" not in session.keys
    assert KEY not in record
