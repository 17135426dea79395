"""The chat panel in the kernel: Send and Stop clicked, answers streamed from the loopback servers."""

from __future__ import annotations

import base64
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell
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


def markdown_of(output_widget) -> list[str]:
    return [entry["data"]["text/markdown"] for entry in output_widget.outputs]


def send(panel, prompt):
    panel.prompt.value = prompt
    with capture_output() as cap:
        panel.send.click()
        assert panel.wait(10)
    return cap


def test_send_streams_the_answer_into_the_conversation_and_the_record(session, openai_server):
    panel = panels.chat(session)
    cap = send(panel, "Say hello")
    shown = markdown_of(panel.conversation)
    assert len(shown) == 1
    assert shown[0].startswith(
        "**You:**\n\n> Say hello\n\n**openai:test-model:**\n\nEcho: Say hello\n\n*test-model"
    )
    assert panel.answer.outputs == ()  # the live exchange moved into the conversation
    record = cap.outputs[-1]
    assert record.data["text/markdown"] == shown[0]
    assert record.metadata["lollms_magics"]["binding"] == "openai"
    assert record.metadata["lollms_magics"]["panel"] == "chat"
    assert session.history()[-1].answer == "Echo: Say hello"
    assert panel.prompt.value == ""
    assert not panel.send.disabled and panel.stop.disabled


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
    again = panels.chat(session)  # a new panel shows the cell's exchange too
    assert "Echo: What is my name?" in markdown_of(again.conversation)[-1]


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
        while "tok" not in "".join(markdown_of(panel.answer)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert panel.worker.busy and not panel.stop.disabled
        panel.stop.click()
        stopped = time.monotonic()
        assert panel.wait(5)
        took = time.monotonic() - stopped
    assert clicked < 1.0  # Send returns at once: the kernel is free while the answer streams
    assert took < 3.0  # not the rest of the eight seconds
    assert openai_server.wait_for_disconnect()
    text = cap.outputs[-1].data["text/markdown"]
    assert " tok" in text and "stopped: the answer was cut short" in text
    assert text.count(" tok") < 200
    assert cap.outputs[-1].metadata["lollms_magics"]["interrupted"] is True
    assert session.history() == []  # an incomplete answer does not join the conversation
    assert "stopped; the text so far is kept" in panel.status.value


def test_updates_are_bounded_by_time_not_by_pieces(session, openai_server):
    openai_server.slow_pieces, openai_server.slow_delay = 60, 0.01
    session.use("openai", "slow", openai_server.url)
    panel = panels.chat(session)
    panel.interval = 0.1
    updates = []
    panel.answer.observe(lambda change: updates.append(time.monotonic()), names="outputs")
    panel.prompt.value = "Go"
    started = time.monotonic()
    with capture_output():
        panel.send.click()
        assert panel.wait(10)
    elapsed = time.monotonic() - started
    answer = markdown_of(panel.conversation)[-1].split("**openai:slow:**\n\n")[1].split("\n\n*")[0]
    assert answer == " tok" * 60
    # one update before the request, at most one per interval while streaming, one to clear at the end
    assert len(updates) <= 2 + elapsed / 0.1 + 1
    assert len(updates) < 30


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
    assert "dot.png" in cap.outputs[-1].data["text/markdown"]


def test_a_failure_midstream_keeps_the_text_and_says_why(session, openai_server):
    session.use("openai", "fail-midstream", openai_server.url)
    panel = panels.chat(session)
    cap = send(panel, "Hello there")
    text = cap.outputs[-1].data["text/markdown"]
    assert "Echo" in text and "incomplete:" in text
    assert "#b00020" in panel.status.value and "boom" in panel.status.value
    assert not panel.send.disabled


def test_an_empty_prompt_sends_nothing(session, openai_server):
    panel = panels.chat(session)
    panel.prompt.value = "   "
    panel.send.click()
    assert not panel.worker.busy
    assert "write a prompt first" in panel.status.value
    assert openai_server.requests_to("/v1/chat/completions") == []


def test_an_unreachable_server_is_shown_in_the_panel(openai_server):
    session = Session("openai", "test-model", "http://127.0.0.1:9")
    session.binding_config.update(max_retries=0, connect_timeout=1.0)
    panel = panels.chat(session)
    with capture_output() as cap:
        panel.prompt.value = "Hi"
        panel.send.click()
        assert panel.wait(10)
    assert "127.0.0.1:9" in panel.status.value and "#b00020" in panel.status.value
    assert not panel.send.disabled
    assert panel.prompt.value == "Hi" and panel.answer.outputs == ()  # the prompt is given back
    assert cap.outputs == [] and panel.conversation.outputs == ()  # no exchange happened
    session.close()
