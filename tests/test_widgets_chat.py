"""The chat panel in the kernel: Send, the keyboard and Stop, answers streamed from the loopback servers.

Each exchange is one output of the cell, updated in place while it streams
(the record a saved notebook keeps); :func:`saved` applies the outputs the way
a frontend does (an update replaces the output of its display id), so it is
what the notebook holds when saved.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display
from IPython.utils.capture import capture_output

from lollms_magics import panels
from lollms_magics.core.session import Session
from lollms_magics.ipython.magics import LollmsMagics
from tests.servers import tiny_png


@pytest.fixture
def session(openai_server, monkeypatch):
    for name in ("LOLLMS_MAGICS_BINDING", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    InteractiveShell.instance()  # displays go to a shell, which capture_output captures
    s = Session("openai", "test-model", openai_server.url)
    yield s
    s.close()


def saved(cap) -> list[str]:
    """The cell's Markdown outputs as a frontend keeps them: updates replace their display id's output."""
    kept: list[list] = []  # [display id, markdown]
    for out in cap.outputs:
        ident, text = out.transient.get("display_id"), out.data.get("text/markdown")
        if out.update:
            for entry in kept:
                if entry[0] == ident:
                    entry[1] = text
        else:
            kept.append([ident, text])
    return [text for _, text in kept if text is not None]


def send(panel, prompt):
    panel.prompt.value = prompt
    with capture_output() as cap:
        panel.send.click()
        assert panel.wait(10)
    return cap


def widget_state(widget) -> str:
    """Everything the panel's widgets would save as widget state, as one string."""
    states = [widget.get_state()]
    for child in getattr(widget, "children", ()):
        states.append(widget_state(child))
    return json.dumps(states, default=str)


def test_send_streams_the_answer_into_one_record_updated_in_place(session, openai_server):
    panel = panels.chat(session)
    cap = send(panel, "Say hello")
    [text] = saved(cap)
    assert text.startswith(
        "**You:**\n\n> Say hello\n\n**openai:test-model:**\n\nEcho: Say hello\n\n*test-model · 6 tokens · ")
    assert text.endswith(" s*") and "▍" not in text
    first, last = cap.outputs[0], cap.outputs[-1]
    assert "▍" in first.data["text/markdown"] and "> Say hello" in first.data["text/markdown"]  # at once
    assert not first.update and all(out.update for out in cap.outputs[1:])
    assert {out.transient["display_id"] for out in cap.outputs} == {first.transient["display_id"]}
    assert last.metadata["lollms_magics"]["binding"] == "openai"
    assert last.metadata["lollms_magics"]["panel"] == "chat"
    assert session.history()[-1].answer == "Echo: Say hello"
    assert panel.prompt.value == "" and panel.status.value == ""
    assert not panel.send.disabled and panel.stop.disabled


def test_each_exchange_has_its_own_record(session, openai_server):
    panel = panels.chat(session)
    one, two = send(panel, "First"), send(panel, "Second")
    assert one.outputs[0].transient["display_id"] != two.outputs[0].transient["display_id"]
    assert "Echo: First" in saved(one)[0] and "Echo: Second" in saved(two)[0]


def test_a_long_answer_is_kept_once_and_never_in_the_widget_state(session, openai_server):
    session.use("openai", "count-25000", openai_server.url)  # 100,000 characters
    panel = panels.chat(session)
    with capture_output() as cap:
        display(panel)
        panel.prompt.value = "Write a lot"
        panel.send.click()
        assert panel.wait(30)
    answer = " tok" * 25000
    records = saved(cap)
    assert sum(answer in text for text in records) == 1  # once in the cell's outputs
    assert " tok tok tok" not in widget_state(panel.widget)  # and nothing of it in the widgets
    assert "Write a lot" not in widget_state(panel.widget)


def test_ctrl_enter_in_the_question_box_sends_what_it_holds(session, openai_server):
    panel = panels.chat(session)
    with capture_output() as cap:
        # What the browser module sends on Ctrl/Cmd+Enter or Shift+Enter (chat_box.js).
        panel.box._handle_custom_msg({"event": "send", "text": "Sent from the keyboard"}, [])
        assert panel.wait(10)
    assert "Echo: Sent from the keyboard" in saved(cap)[0]
    assert panel.prompt.value == ""
    panel.box._handle_custom_msg({"event": "other"}, [])  # anything else sends nothing
    panel.box._handle_custom_msg({"event": "send", "text": "  "}, [])
    assert not panel.worker.busy and "write a prompt first" in panel.status.value
    assert len(openai_server.requests_to("/v1/chat/completions")) == 1


def test_the_box_is_a_browser_module_with_no_text_of_its_own(session):
    panel = panels.chat(session)
    state = panel.box.get_state()
    assert "lollms-chat-box" in state["_esm"] and "max-height: 480px" in state["_css"]
    assert set(state) - {"_esm", "_css"} <= {key for key in state if key.startswith("_") or key in {
        "layout", "tabbable", "tooltip"}}
    assert "lollms-question" in panel.prompt._dom_classes  # the box sends from this question box


def test_panel_and_cells_share_one_conversation(session, openai_server):
    panel = panels.chat(session)
    send(panel, "My name is Ada")
    shell = InteractiveShell.instance()
    magics = LollmsMagics(shell=shell, session=session, footer=False)
    shell.register_magics(magics)
    try:
        with capture_output():
            shell.run_cell_magic("lollms", "", "What is my name?")
    finally:
        shell.configurables.remove(magics)
    messages = openai_server.last_request.json["messages"]
    assert [m["content"] for m in messages] == ["My name is Ada", "Echo: My name is Ada", "What is my name?"]
    with capture_output() as cap:
        display(panels.chat(session))  # a new panel says what it continues, without copying it
    assert saved(cap) == ["*continues a conversation of 2 exchange(s): “My name is Ada” · "
                          "“What is my name?”; New conversation starts afresh*"]


def test_new_conversation_forgets_and_says_so_once(session, openai_server):
    panel = panels.chat(session)
    send(panel, "Remember me")
    with capture_output() as cap:
        panel.clear.click()
    assert session.history() == []
    assert saved(cap) == ["*new conversation: what was said above is forgotten*"]
    assert panel.status.value == ""


def test_stop_cancels_and_keeps_the_text_so_far(session, openai_server):
    openai_server.slow_pieces, openai_server.slow_delay = 400, 0.02  # eight seconds in all
    session.use("openai", "slow", openai_server.url)
    panel = panels.chat(session)
    panel.prompt.value = "Count"
    with capture_output() as cap:
        started = time.monotonic()
        panel.send.click()
        clicked = time.monotonic() - started
        deadline = time.monotonic() + 5
        while " tok" not in "".join(saved(cap)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert panel.worker.busy and not panel.stop.disabled
        panel.stop.click()
        stopped = time.monotonic()
        assert panel.wait(5)
        took = time.monotonic() - stopped
    assert clicked < 1.0  # Send returns at once: the kernel is free while the answer streams
    assert took < 3.0  # not the rest of the eight seconds
    assert openai_server.wait_for_disconnect()
    [text] = saved(cap)
    assert " tok" in text and text.endswith(" · stopped: the answer was cut short*") and "▍" not in text
    assert text.count(" tok") < 200
    assert cap.outputs[-1].metadata["lollms_magics"]["interrupted"] is True
    assert session.history() == []  # an incomplete answer does not join the conversation
    assert panel.status.value == ""  # said once, in the exchange


def test_updates_are_bounded_by_time_not_by_pieces(session, openai_server):
    openai_server.slow_pieces, openai_server.slow_delay = 60, 0.01
    session.use("openai", "slow", openai_server.url)
    panel = panels.chat(session)
    panel.interval = 0.1
    started = time.monotonic()
    cap = send(panel, "Go")
    elapsed = time.monotonic() - started
    answer = saved(cap)[-1].split("**openai:slow:**\n\n")[1].split("\n\n*")[0]
    assert answer == " tok" * 60
    # the question at once, at most one update per interval while streaming, the final one
    assert len(cap.outputs) <= 2 + elapsed / 0.1 + 1
    assert len(cap.outputs) < 30


def test_an_attached_image_is_sent_and_the_upload_cleared(session, openai_server):
    png = tiny_png(4, 4)
    panel = panels.chat(session)
    # What the browser sends when a file is chosen (ipywidgets' FileUpload wire format).
    panel.attach.set_state({"value": [{"name": "dot.png", "type": "image/png", "size": len(png),
                                       "content": memoryview(png), "last_modified": 1700000000000}]})
    cap = send(panel, "Describe this")
    content = openai_server.last_request.json["messages"][-1]["content"]
    urls = [part["image_url"]["url"] for part in content if part["type"] == "image_url"]
    assert urls == ["data:image/png;base64," + base64.b64encode(png).decode()]
    assert panel.attach.value == ()
    assert "dot.png" in saved(cap)[0]


def test_a_failure_midstream_keeps_the_text_and_says_why_once(session, openai_server):
    session.use("openai", "fail-midstream", openai_server.url)
    panel = panels.chat(session)
    cap = send(panel, "Hello there")
    [text] = saved(cap)
    assert "Echo" in text and "incomplete: " in text and text.endswith("the server reported an error: boom*")
    assert (text + panel.status.value + cap.stdout + cap.stderr).count("boom") == 1  # one line
    assert not panel.send.disabled


def test_an_unreachable_server_is_said_once_and_the_prompt_given_back(openai_server):
    session = Session("openai", "test-model", "http://127.0.0.1:9")
    session.binding_config.update(max_retries=0, connect_timeout=1.0)
    panel = panels.chat(session)
    with capture_output() as cap:
        panel.prompt.value = "Hi"
        panel.send.click()
        assert panel.wait(10)
    [text] = saved(cap)
    assert text.startswith("**You:**\n\n> Hi\n\n**openai:test-model:**\n\n"
                           "*not answered: cannot reach openai at http://127.0.0.1:9")
    assert text.count("127.0.0.1:9") == 1 and panel.status.value == ""
    assert not panel.send.disabled
    assert panel.prompt.value == "Hi"  # the prompt is given back, to resend
    assert session.history() == []
    session.close()


def test_an_empty_prompt_sends_nothing(session, openai_server):
    panel = panels.chat(session)
    panel.prompt.value = "   "
    panel.send.click()
    assert not panel.worker.busy
    assert "write a prompt first" in panel.status.value
    assert openai_server.requests_to("/v1/chat/completions") == []


def test_sent_shows_the_last_request_with_the_key_masked_and_only_while_open(openai_server, monkeypatch):
    key = "sk-chat-sent-0123456789abcdef"
    for name in ("LOLLMS_MAGICS_BINDING", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    InteractiveShell.instance()
    openai_server.api_key = key  # answers come only if the key was sent
    session = Session("openai", "test-model", openai_server.url, api_key=key)
    try:
        panel = panels.chat(session)
        panel.sent.value = True
        assert "nothing sent yet" in panel.sent_view.value
        send(panel, "What is a harbour?")
        shown = panel.sent_view.value  # refreshed when the answer ended
        assert "What is a harbour?" in shown and "model    test-model" in shown
        assert key not in shown and key not in widget_state(panel.widget)
        panel.sent.value = False
        assert panel.sent_view.value == ""  # closed: nothing of it kept in the widget state
        assert "harbour" not in widget_state(panel.widget)
    finally:
        session.close()
