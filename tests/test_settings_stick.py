"""Settings made in Python stay made: the magics carry a ``%config`` value when it is set, not on every call.

Issue 15, section 2: a session made with ``Session(...)``, ``set_default_session``
or ``LollmsClient(...).make_default()`` kept its context size, history length
and read timeout only until the first ``%lollms``; and asking the same prompt
twice from Python replaced the first exchange.
"""

from __future__ import annotations

import pytest
from IPython.utils.capture import capture_output

from lollms_magics import LollmsClient, Session, set_default_session
from lollms_magics.ipython.magics import LollmsMagics
from tests.shell import CHOICE, magics_shell


@pytest.fixture
def shell(monkeypatch):
    """A shell whose magics use the kernel's default session (as after ``%load_ext``)."""
    with magics_shell(monkeypatch, unset=(*CHOICE, "OPENAI_API_KEY"), session="kernel") as ip:
        yield ip


def run(ip, line, body=None):
    with capture_output() as cap:
        if body is None:
            ip.run_line_magic("lollms", line)
        else:
            ip.run_cell_magic("lollms", line, body)
    return cap


def test_a_session_made_in_python_keeps_its_settings_through_magics(shell, openai_server):
    session = set_default_session(
        Session("openai", "test-model", openai_server.url, context_size=16000, max_history=5, fill_limit=99)
    )
    session.binding_config["read_timeout"] = 900.0
    run(shell, "history")
    run(shell, "", "hello")
    run(shell, "status")
    assert (session.context_size, session.max_history, session.fill_limit) == (16000, 5, 99)
    assert session.binding_config["read_timeout"] == 900.0
    assert session.binding().read_timeout == 900.0


def test_make_default_keeps_the_clients_context_and_timeout(shell, openai_server):
    lc = LollmsClient(
        llm_binding_name="openai", host_address=openai_server.url, model_name="test-model",
        ctx_size=32768, llm_binding_config={"read_timeout": 900},
    ).make_default()
    run(shell, "", "hello")
    assert lc.context_size == 32768
    assert lc.binding_config["read_timeout"] == 900
    assert lc.session.binding().read_timeout == 900


def test_a_cell_timeout_is_for_that_cell_only(shell, openai_server):
    session = set_default_session(Session("openai", "test-model", openai_server.url))
    session.binding_config["read_timeout"] = 900.0
    run(shell, "--timeout 7", "hello")
    assert session.last is not None
    assert session.binding_config["read_timeout"] == 900.0
    run(shell, "", "hello again")
    assert session.binding().read_timeout == 900.0


def test_a_cell_timeout_leaves_no_timeout_behind_when_none_was_set(shell, openai_server):
    session = set_default_session(Session("openai", "test-model", openai_server.url))
    run(shell, "--timeout 7", "hello")
    assert "read_timeout" not in session.binding_config
    assert session.binding().read_timeout == 120.0


def test_a_config_value_reaches_the_session_when_it_is_set_and_stays(shell, openai_server):
    session = set_default_session(Session("openai", "test-model", openai_server.url, context_size=16000))
    shell.run_line_magic("config", "LollmsMagics.max_history = 3")
    assert session.max_history == 3 and session.context_size == 16000
    shell.run_line_magic("config", "LollmsMagics.timeout = 45.0")
    run(shell, "", "hello")
    assert session.max_history == 3
    assert session.binding().read_timeout == 45.0


def test_a_config_file_value_reaches_the_session_at_load(shell, openai_server):
    shell.config.LollmsMagics.context_size = 12345
    magics = LollmsMagics(shell=shell, session=Session("openai", "test-model", openai_server.url))
    assert magics.session.context_size == 12345


def test_the_same_prompt_asked_twice_from_python_adds_two_exchanges(openai_server):
    session = Session("openai", "test-model", openai_server.url)
    for _ in range(2):
        assert session.ask("Continue.").text
    assert [e.prompt for e in session.history()] == ["Continue.", "Continue."]
    lc = LollmsClient(llm_binding_name="openai", host_address=openai_server.url, model_name="test-model")
    assert lc.ask("Continue.").text
    assert lc.ask("Continue.").text
    assert len(lc.history()) == 2


def test_a_cell_run_again_still_replaces_its_exchange(shell, openai_server):
    session = set_default_session(Session("openai", "test-model", openai_server.url))
    run(shell, "", "Same cell.")
    run(shell, "", "Same cell.")
    assert [e.prompt for e in session.history()] == ["Same cell."]
