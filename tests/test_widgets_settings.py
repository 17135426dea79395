"""The settings panel in the kernel: values set, buttons clicked, against the loopback servers."""

from __future__ import annotations

import json
import socket

import ipywidgets
import pytest
from IPython.utils.capture import capture_output

from lollms_magics import panels
from lollms_magics.core.session import Session
from lollms_magics.options import OPTIONS
from tests.shell import CHOICE, magics_shell

KEY = "sk-panel-test-0123456789abcdef"


@pytest.fixture
def session():
    s = Session()
    yield s
    s.close()


@pytest.fixture
def shell(monkeypatch, session):
    """The shell with fresh magics on ``session``, the one the panel sets."""
    unset = (*CHOICE, "OPENAI_API_KEY", "OPENAI_BASE_URL")
    with magics_shell(monkeypatch, unset=unset, session=session) as ip:
        yield ip


def choose(panel, server, key=None):
    panel.binding.value = "openai"
    panel.host.value = server.url
    if key:
        panel.key.value = key


def all_widget_state() -> str:
    """Every live widget's state, as a notebook would save it."""
    states = [w.get_state() for w in list(ipywidgets.Widget.widgets.values())]
    return json.dumps([states, ipywidgets.Widget.get_manager_state()], default=repr)


def test_use_makes_the_choice_the_default_of_the_next_cell(shell, session, openai_server):
    openai_server.api_key = KEY
    panel = panels.settings(session)
    choose(panel, openai_server, KEY)
    panel.refresh.click()
    assert panel.wait()
    assert [v for _, v in panel.model.options] == ["", "test-model", "vision-model"]
    panel.model.value = "vision-model"
    _, tick, box = panel.options["temperature"]
    tick.value, box.value = True, 0.25
    with capture_output() as cap:
        panel.use.click()
    assert session.options == {"temperature": 0.25}
    with capture_output() as cell:
        shell.run_cell_magic("lollms", "", "Name a colour")
    assert cell.outputs[-1].data["text/markdown"] == "Echo: Name a colour"
    sent = openai_server.last_request
    assert sent.json["model"] == "vision-model" and sent.json["temperature"] == 0.25
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    record = cap.outputs[-1].data["text/markdown"]
    assert record.startswith("**lollms settings**: `openai` · model `vision-model`")
    assert "temperature=0.25" in record and "API key typed" in record


@pytest.mark.filterwarnings("ignore:Widget.widgets is deprecated:DeprecationWarning")
def test_the_key_is_in_no_widget_state_nor_record(shell, session, openai_server):
    panel = panels.settings(session)
    choose(panel, openai_server, KEY)
    assert panel.key.value == ""  # taken out of the widget as soon as the kernel got it
    with capture_output() as cap:
        panel.use.click()
    assert session.keys.get("openai") == KEY
    state = all_widget_state()
    assert panel.binding.model_id in state  # the dump really holds this panel's widgets
    assert KEY not in state
    assert KEY not in json.dumps([(o.data, o.metadata) for o in cap.outputs])
    assert KEY not in panel.status.value


def test_refresh_shows_the_error_when_the_server_does_not_answer(session):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    panel = panels.settings(session)
    panel.binding.value = "openai"
    panel.host.value = f"http://127.0.0.1:{port}"
    panel.refresh.click()
    assert panel.wait()
    expected = f"could not list the models: cannot reach openai at http://127.0.0.1:{port}/v1"
    assert expected in panel.status.value
    assert "#b00020" in panel.status.value  # shown as an error
    assert [v for _, v in panel.model.options] == [""]


def test_option_controls_follow_the_declared_options(session):
    session.options = {"seed": 7, "stop": ["END", "###"]}
    panel = panels.settings(session)
    assert set(panel.options) == set(OPTIONS)
    _, seed_tick, seed = panel.options["seed"]
    assert seed_tick.value and seed.value == 7 and not seed.disabled
    _, top_p_tick, top_p = panel.options["top_p"]
    assert not top_p_tick.value and top_p.disabled and top_p.max == 1
    assert panel.options["temperature"][2].max == 5
    assert panel.options["n_predict"][2].min == 1
    assert panel.option_values() == {"seed": 7, "stop": ["END", "###"]}
    seed_tick.value = False
    panel.use.click()  # binding "auto": back to the automatic choice, with only stop kept
    assert session.options == {"stop": ["END", "###"]}
    assert session.configured() is None


def test_auto_disables_host_model_and_key(session):
    panel = panels.settings(session)
    assert panel.binding.value == "auto"
    assert panel.host.disabled and panel.model.disabled and panel.key.disabled
    panel.binding.value = "ollama"
    assert not panel.host.disabled
    assert panel.host.placeholder.startswith("http://")


def test_the_panel_starts_from_the_session_choice(session, openai_server):
    session.use("openai", "test-model", openai_server.url)
    panel = panels.settings(session)
    assert panel.binding.value == "openai"
    assert panel.host.value == openai_server.url
    assert panel.model.value == "test-model"


def test_refresh_with_a_wrong_key_says_what_the_server_said_without_the_key(session, openai_server):
    openai_server.api_key = KEY
    panel = panels.settings(session)
    choose(panel, openai_server, "sk-wrong-key-000000000000")
    panel.refresh.click()
    assert panel.wait()
    assert panel.status.value.startswith('<span style="color:#b00020">could not list the models: ')
    assert "sk-wrong-key-000000000000" not in panel.status.value
    assert openai_server.last_request.headers["authorization"] == "Bearer sk-wrong-key-000000000000"
