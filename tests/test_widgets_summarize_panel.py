"""The summarize panel as a user drives it: Stop then resume without a new upload, Clear, the backend,
model and context choices, and one status line that is always true.

The panels run in the kernel without a browser; buttons are clicked as the
frontend would (``Button.click()``), against the loopback servers.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import textwrap
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
from tests.servers import OllamaServer, OpenAIServer
from tests.servers.openai_compat import message_text
from tests.test_widgets_summarize import document, reply

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def session(openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    for name in ("LOLLMS_MAGICS_BINDING", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OLLAMA_HOST"):
        monkeypatch.delenv(name, raising=False)
    shared_memory().clear()
    InteractiveShell.instance()
    openai_server.reply = reply
    s = Session("openai", "test-model", openai_server.url)
    yield s
    s.close()
    shared_memory().clear()


@pytest.fixture
def report() -> Iterator[None]:
    namespace = InteractiveShell.instance().user_ns
    namespace["report"] = document(12)
    yield
    del namespace["report"]


@pytest.fixture
def temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary folder the panel writes uploads to (a fresh one, to look into)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def chat_requests(server: Any) -> list[str]:
    """The text of every generation request, in order."""
    sent = server.requests_to("/v1/chat/completions")
    return [message_text(r.json["messages"][-1]["content"]) for r in sent]


def wait_until(condition: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert condition()


def upload(panel: Any, name: str, content: bytes) -> None:
    panel.upload.set_state({"value": [{"name": name, "type": "text/markdown", "size": len(content),
                                       "content": memoryview(content), "last_modified": 1700000000000}]})


def statuses(panel: Any) -> list[tuple[float, str]]:
    """Every status line the panel shows from now on, with when it was shown, as text."""
    seen: list[tuple[float, str]] = []
    panel.status.observe(
        lambda change: seen.append((time.monotonic(), re.sub(r"<[^>]+>", "", change["new"]))), names="value")
    return seen


# ---------------------------------------------------------------- Stop, resume, Clear


def test_stop_keeps_the_upload_and_summarize_again_resumes_without_a_new_upload(
    session: Session, openai_server: OpenAIServer, temporary: Path
) -> None:
    openai_server.request_delay = 0.4  # each answer waits: Stop comes with some chunks read, others not
    panel = panels.summarize(session)
    panel.choice.ctx.value = 1024  # many chunks
    upload(panel, "minutes.md", document(12).encode())
    assert panel.upload.value == ()  # the content left the widget (its state may be saved)
    assert "minutes.md" in panel.file.value and not panel.clear.disabled
    with capture_output() as cap:
        assert panel.run()
        wait_until(lambda: len(chat_requests(openai_server)) >= 3)
        panel.stop.click()
        assert panel.wait(10)
    head = cap.outputs[-1].data["text/markdown"].splitlines()[0]
    meta = cap.outputs[-1].metadata["lollms_magics"]
    assert head.endswith(" · stopped") and (meta["stopped"], meta["error"]) == (True, "stopped")
    assert "every host failed" not in str((cap.outputs[-1].data, meta, panel.status.value))
    assert "stopped; what was done is kept" in panel.status.value
    first = panel.summary
    assert first is not None and not first.complete
    read = sum(1 for step in first.steps if step)  # chunks whose notes were kept
    assert 1 <= read < first.chunks
    assert list(temporary.iterdir()) == []  # the file is in the kernel's memory, not on disk
    assert "minutes.md" in panel.file.value and panel.upload.value == ()

    openai_server.request_delay = 0.0
    sent_before = len(chat_requests(openai_server))
    with capture_output() as cap:
        panel.start.click()  # no new upload
        assert panel.wait(30)
    summary = panel.summary
    assert summary is not None and summary.complete and summary.chunks == first.chunks
    again = chat_requests(openai_server)[sent_before:]
    assert summary.cached >= read and len(again) == summary.calls
    assert not any("S0000" in text for text in again)  # the first chunk was read before the Stop
    assert any("S0119" in text for text in again)  # the last one was not
    assert cap.outputs[-1].metadata["lollms_magics"]["complete"] is True
    assert "done in" in panel.status.value and f"{summary.cached} reused" in panel.status.value
    assert list(temporary.iterdir()) == []


def test_clear_forgets_the_file_and_a_path_typed_is_read_instead_of_it(
    session: Session, openai_server: OpenAIServer, temporary: Path, tmp_path: Path
) -> None:
    panel = panels.summarize(session)
    assert panel.clear.disabled and "no file kept" in panel.file.value
    upload(panel, "minutes.md", b"The committee met in the harbour town in 1852.")
    path = tmp_path / "notes.txt"
    path.write_text("The lighthouse was lit in 1901 by the keeper Anna.")
    panel.source.value = str(path)
    with capture_output():
        assert panel.run()
        assert panel.wait(30)
    sent = chat_requests(openai_server)
    assert "lighthouse" in sent[-1] and "harbour" not in sent[-1]
    assert "minutes.md" in panel.file.value  # still kept
    panel.source.value = ""
    with capture_output():
        assert panel.run()
        assert panel.wait(30)
    assert "harbour town in 1852" in chat_requests(openai_server)[-1]
    panel.clear.click()
    assert panel.clear.disabled and "no file kept" in panel.file.value
    assert not panel.run()
    assert "choose a file" in panel.status.value
    assert len(chat_requests(openai_server)) == 2
    assert list(temporary.iterdir()) == []


SCRIPT = textwrap.dedent("""
    import sys, tempfile, time
    tempfile.tempdir = sys.argv[1]
    from IPython.core.interactiveshell import InteractiveShell
    InteractiveShell.instance()
    from lollms_magics import panels
    from lollms_magics.core.session import Session

    session = Session("openai", "test-model", "http://127.0.0.1:9")
    load = session.load_document
    session.load_document = lambda source: (time.sleep(60), load(source))[1]  # a slow reader (a big PDF)
    panel = panels.summarize(session)
    text = b"The harbour is old."
    panel.upload.set_state({"value": [{"name": "minutes.md", "type": "text/markdown", "size": len(text),
                                       "content": memoryview(text), "last_modified": 1700000000000}]})
    assert panel.run()
    from pathlib import Path
    while not list(Path(sys.argv[1]).glob("lollms-summarize-*/minutes.md")):
        time.sleep(0.02)
    print("reading", flush=True)
    sys.exit(0)  # the kernel stops while the run reads the file
""")


def test_an_upload_being_read_when_the_interpreter_exits_leaves_no_temporary_folder(tmp_path: Path) -> None:
    folder = tmp_path / "tmp"
    folder.mkdir()
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(folder)], capture_output=True, text=True,
                         timeout=60)
    assert run.stdout.strip() == "reading", run.stderr[-2000:]
    assert list(folder.iterdir()) == []


# ---------------------------------------------------------------- backend, model, context


def test_the_panel_says_the_model_it_uses_and_its_model_and_context_choice_are_sent(
    session: Session, openai_server: OpenAIServer, report: None
) -> None:
    openai_server.models = ["test-model", "other-model"]
    panel = panels.summarize(session)
    assert panel.choice.wait()
    uses = panel.choice.uses.value
    assert "uses openai · model test-model · " in uses and "context 2048 tokens (the default" in uses
    assert openai_server.requests == []  # opening the panel on a named model asks nothing
    panel.choice.refresh.click()
    assert panel.choice.wait()
    assert [value for _, value in panel.choice.model.options] == ["", "test-model", "other-model"]
    assert panel.choice.model.options[0][0] == "default (test-model)"
    panel.source.value = "report"
    with capture_output():
        assert panel.run()
        assert panel.wait(30)
    default_chunks = panel.summary.chunks
    panel.choice.model.value = "other-model"
    panel.choice.ctx.value = 8192
    assert "model other-model" in panel.choice.uses.value and "context 8192 tokens" in panel.choice.uses.value
    sent_before = len(openai_server.requests_to("/v1/chat/completions"))
    with capture_output() as cap:
        assert panel.run()
        assert panel.wait(30)
    sent = openai_server.requests_to("/v1/chat/completions")[sent_before:]
    assert sent and {r.json["model"] for r in sent} == {"other-model"}
    assert 1 <= panel.summary.chunks < default_chunks  # the larger window holds larger parts
    record = cap.outputs[-1]
    assert " · openai `other-model`" in record.data["text/markdown"].splitlines()[0]
    meta = record.metadata["lollms_magics"]
    assert (meta["binding"], meta["model"], meta["ctx_size"]) == ("openai", "other-model", 8192)
    # An OpenAI-compatible server keeps its own window: the run says so.
    assert "must hold 8192 tokens" in str(meta["notices"]) and "must hold 8192 tokens" in panel.status.value
    assert session.configured().model == "test-model"  # the panel's choice is its own


def test_another_backend_and_host_chosen_in_the_panel_do_the_work(
    session: Session, openai_server: OpenAIServer, ollama_server: OllamaServer, report: None
) -> None:
    ollama_server.reply = reply
    panel = panels.summarize(session)
    panel.choice.backend.value = "ollama"
    panel.choice.host.value = ollama_server.url
    assert panel.choice.wait()
    assert "uses ollama · model test-model:latest, the first listed · " in panel.choice.uses.value
    listed = [value for _, value in panel.choice.model.options]
    assert listed == ["", "test-model:latest", "vision-model:latest"]
    panel.source.value = "report"
    with capture_output() as cap:
        assert panel.run()
        assert panel.wait(30)
    assert panel.summary.complete
    assert ollama_server.requests_to("/api/chat") and openai_server.requests_to("/v1/chat/completions") == []
    assert cap.outputs[-1].metadata["lollms_magics"]["binding"] == "ollama"
    assert session.configured().name == "openai"


# ---------------------------------------------------------------- one status line


def test_a_new_run_never_shows_the_last_ones_done_and_stop_leaves_no_time_left(
    session: Session, openai_server: OpenAIServer, report: None
) -> None:
    panel = panels.summarize(session)
    panel.source.value = "report"
    with capture_output():
        assert panel.run()
        assert panel.wait(30)
    assert "done in" in panel.status.value
    openai_server.request_delay = 0.3
    panel.choice.ctx.value = 1024
    shown = statuses(panel)
    with capture_output():
        assert panel.run()
        assert shown[0][1] == "reading report…"  # the last run's "done" is gone at once
        wait_until(lambda: any("left for the other chunks" in text for _, text in shown))
        clicked = len(shown)
        panel.stop.click()
        assert panel.wait(10)
    during = [text for _, text in shown[:clicked]]
    assert not any("done" in text for text in during)
    assert all(text.startswith(("reading", "chunk ")) for text in during)
    after = [text for _, text in shown[clicked:]]
    assert after[0] == "stopping…" and after[-1].startswith("stopped; what was done is kept")
    assert not any("left" in text or text.startswith("chunk") for text in after)
    time.sleep(0.5)  # nothing the stopped run still reports comes after
    assert panel.status.value.endswith("stopped; what was done is kept (Summarize again to resume)</span>")


def test_time_left_waits_for_a_finished_chunk_and_is_near_the_time_taken(
    session: Session, openai_server: OpenAIServer, report: None
) -> None:
    openai_server.request_delay = 0.4
    panel = panels.summarize(session)
    panel.source.value = "report"
    panel.choice.ctx.value = 1024
    shown = statuses(panel)
    with capture_output():
        assert panel.run()
        assert panel.wait(60)
    assert panel.summary.complete and panel.summary.chunks >= 5
    texts = [text for _, text in shown]
    estimates = [(when, text) for when, text in shown if "left" in text]
    assert estimates, texts
    first_when, first_text = estimates[0]
    assert first_text.startswith("chunk 1/")  # not before the first chunk was read
    assert not any("left" in text for text in texts[:texts.index(first_text)])
    minutes, seconds = re.search(r"about (\d+):(\d\d) left", first_text).groups()
    guessed = int(minutes) * 60 + int(seconds)
    read_all = next(when for when, text in shown if text.startswith(("combining", "writing")))
    took = read_all - first_when
    assert 0.4 * took <= guessed + 0.5 and guessed <= 2.5 * took + 0.5, (guessed, took)
    assert texts[-1].startswith("done in")


def test_a_refused_document_shows_its_error_alone(
    session: Session, openai_server: OpenAIServer, temporary: Path
) -> None:
    panel = panels.summarize(session)
    upload(panel, "scan.bin", bytes(range(256)) * 4)  # no text in it: refused
    shown = statuses(panel)
    with capture_output():
        assert panel.run()
        assert panel.wait(10)
    assert "#b00020" in panel.status.value and "reading" not in panel.status.value
    assert shown[-1][1] == re.sub(r"<[^>]+>", "", panel.status.value)
    assert panel.progress.bar_style == "danger"
    assert openai_server.requests_to("/v1/chat/completions") == []
    assert list(temporary.iterdir()) == []


def test_a_backend_that_fails_mid_run_ends_on_its_error_alone(
    session: Session, openai_server: OpenAIServer, report: None
) -> None:
    panel = panels.summarize(session)
    panel.source.value = "report"
    panel.choice.ctx.value = 1024
    original = openai_server.reply

    def answer(prompt: str) -> str:
        if "S0030" in prompt:  # from the fourth chunk on, every request fails
            openai_server.fail_next = [(500, {})] * 100
        return original(prompt)

    openai_server.reply = answer
    with capture_output() as cap:
        assert panel.run()
        assert panel.wait(60)
    assert panel.summary is not None and not panel.summary.complete
    text = re.sub(r"<[^>]+>", "", panel.status.value)
    assert "#b00020" in panel.status.value
    assert text.endswith("; what was done is kept (Summarize again to resume)")
    assert not text.startswith(("chunk", "reading", "writing")) and "left" not in text
    assert panel.progress.bar_style == "danger"
    assert "incomplete" in cap.outputs[-1].data["text/markdown"].splitlines()[0]


def test_the_model_menu_names_the_model_the_session_changed_to(
    session: Session, openai_server: OpenAIServer, report: None
) -> None:
    # The settings panel (or %lollms use) changes the session's model after the panel opened:
    # the next run uses it, and the menu's default entry must name it as the "uses" line does.
    openai_server.models = ["test-model", "other-model"]
    panel = panels.summarize(session)
    assert panel.choice.wait()
    panel.choice.refresh.click()
    assert panel.choice.wait()
    assert panel.choice.model.options[0][0] == "default (test-model)"
    session.use("openai", "other-model", openai_server.url)
    panel.source.value = "report"
    with capture_output():
        assert panel.run()
        assert panel.wait(30)
    assert "model other-model" in panel.choice.uses.value
    assert panel.choice.model.options[0][0] == "default (other-model)"
    assert panel.choice.model.value == ""  # still the session's, whatever it becomes


def test_the_panels_calls_are_counted_in_the_sessions_usage(
    session: Session, openai_server: OpenAIServer, report: None
) -> None:
    panel = panels.summarize(session)
    assert panel.choice.wait()
    panel.source.value = "report"
    with capture_output():
        assert panel.run()
        assert panel.wait(30)
    sent = openai_server.requests_to("/v1/chat/completions")
    assert len(sent) > 1
    counted = [(r.binding, r.model, r.calls) for r in session.usage.rows()]
    assert counted == [("openai", "test-model", len(sent))]
