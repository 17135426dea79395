"""Stop in the summarize and chat panels, the way a user presses it: during map-reduce, then a second click.

The panels run in the kernel without a browser; the buttons are clicked as
the frontend would (``Button.click()``), against loopback servers.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from lollms_magics import panels
from lollms_magics.core.session import Session
from lollms_magics.summaries.resume import shared_memory
from tests.servers import OpenAIServer
from tests.test_widgets_summarize import document, reply

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def session(openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    for name in ("LOLLMS_MAGICS_BINDING", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    shared_memory().clear()
    InteractiveShell.instance()
    openai_server.reply = reply
    s = Session("openai", "test-model", openai_server.url)
    yield s
    s.close()
    shared_memory().clear()


def chat_requests(server: OpenAIServer) -> int:
    return len(server.requests_to("/v1/chat/completions"))


def wait_for_requests(server: OpenAIServer, count: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while chat_requests(server) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert chat_requests(server) >= count


@pytest.fixture
def report() -> Iterator[None]:
    namespace = InteractiveShell.instance().user_ns
    namespace["report"] = document(12)  # several parts at the default context: map-reduce
    yield
    del namespace["report"]


def slow_summary_panel(session: Session, server: OpenAIServer) -> Any:
    server.slow_pieces, server.slow_delay = 400, 0.02  # eight seconds per answer
    session.use("openai", "slow", server.url)
    panel = panels.summarize(session)
    panel.source.value = "report"
    panel.mode.value = "map-reduce"
    return panel


def test_stopping_a_map_reduce_summary_says_stopped_not_every_host_failed(
    session: Session, openai_server: OpenAIServer, report: None
) -> None:
    panel = slow_summary_panel(session, openai_server)
    with capture_output() as cap:
        assert panel.run()
        wait_for_requests(openai_server, 1)
        time.sleep(0.2)
        panel.stop.click()
        assert panel.wait(5)
    record = cap.outputs[-1]
    head = record.data["text/markdown"].splitlines()[0]
    assert panel.summary is not None and not panel.summary.complete and panel.summary.chunks > 1
    assert head.endswith(" · stopped")
    assert "every host failed" not in str((record.data, record.metadata, panel.status.value))
    meta = record.metadata["lollms_magics"]
    assert (meta["complete"], meta["stopped"], meta["error"]) == (False, True, "stopped")
    assert "stopped; what was done is kept" in panel.status.value and "#b00020" not in panel.status.value
    assert panel.progress.bar_style == "warning"


def test_a_second_click_while_a_stopped_summary_ends_keeps_it_stopped(
    session: Session, openai_server: OpenAIServer, report: None
) -> None:
    panel = slow_summary_panel(session, openai_server)
    with capture_output() as cap:
        assert panel.run()
        wait_for_requests(openai_server, 1)
        time.sleep(0.2)
        panel.stop.click()
        sent = chat_requests(openai_server)
        panel.start.click()  # Summarize again, while the stopped run winds down
        stopped = time.monotonic()
        assert panel.wait(5)
        took = time.monotonic() - stopped
    assert took < 3.0  # the stopped run ended; it did not go on with the next parts
    assert chat_requests(openai_server) == sent  # no request after the Stop
    assert panel.summary is not None and not panel.summary.complete
    assert cap.outputs[-1].data["text/markdown"].splitlines()[0].endswith(" · stopped")
    assert shared_memory()._items == {}  # no cut answer kept as notes


def upload(panel: Any, name: str, content: bytes) -> None:
    panel.upload.set_state({"value": [{"name": name, "type": "application/octet-stream", "size": len(content),
                                       "content": memoryview(content), "last_modified": 1700000000000}]})


@pytest.fixture
def temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder the panel writes uploads to (a fresh one, to look into)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_an_upload_refused_leaves_nothing_in_the_temporary_folder(
    session: Session, openai_server: OpenAIServer, temporary: Path, report: None
) -> None:
    panel = panels.summarize(session)
    upload(panel, "scan.bin", bytes(range(256)) * 4)  # no text in it: refused
    with capture_output():
        assert panel.run()
        assert panel.wait(10)
    assert "#b00020" in panel.status.value
    assert list(temporary.iterdir()) == []
    # A run refused because another still runs.
    slow = slow_summary_panel(session, openai_server)
    with capture_output():
        assert slow.run()
        upload(slow, "minutes.md", document(2).encode())
        assert not slow.run()
        assert "still" in slow.status.value
        assert list(temporary.iterdir()) == []
        slow.stop.click()
        assert slow.wait(5)


# ---------------------------------------------------------------- chat


def test_a_second_send_while_a_stopped_answer_ends_keeps_it_stopped(
    session: Session, openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    openai_server.slow_pieces, openai_server.slow_delay = 200, 0.02  # four seconds in all
    session.use("openai", "slow", openai_server.url)
    binding = session.binding(session.target())
    asked, go_on = threading.Event(), threading.Event()
    generate = binding.generate

    def slow_to_send(*args: Any, **kwargs: Any) -> Any:
        asked.set()
        go_on.wait(5)  # the request is still being made (a slow server, a protocol probe)
        return generate(*args, **kwargs)

    monkeypatch.setattr(binding, "generate", slow_to_send)
    panel = panels.chat(session)
    panel.prompt.value = "Count"
    with capture_output() as cap:
        panel.send.click()
        assert asked.wait(5)
        panel.stop.click()
        panel.prompt.value = "Count again"
        panel.send.click()  # a second Send while the stopped answer winds down
        assert "still" in panel.status.value
        go_on.set()
        stopped = time.monotonic()
        assert panel.wait(5)
        took = time.monotonic() - stopped
    assert took < 2.0  # it did not stream its four seconds to the end
    text = cap.outputs[-1].data["text/markdown"]
    assert "stopped: the answer was cut short" in text
    assert text.count(" tok") < 50
    assert panel.prompt.value == "Count again"  # the second prompt was not taken
