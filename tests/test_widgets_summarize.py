"""The summarize panel in the kernel: an upload, a path or a variable, progress, Stop, the record."""

from __future__ import annotations

import re
import time

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from lollms_magics import panels
from lollms_magics.core.session import Session
from lollms_magics.summaries.resume import shared_memory
from tests.servers.openai_compat import message_text

pytestmark = pytest.mark.timeout(60)

SUMMARY = "- the committee met in the harbour town, twelve times"


def document(sections: int = 12) -> str:
    return "\n\n".join(
        f"## Section {s + 1}\n\n" + " ".join(
            f"Sentence S{s * 10 + i:04d} tells how the committee met in the harbour town again."
            for i in range(10))
        for s in range(sections))


def reply(prompt: str) -> str:
    ids = re.findall(r"S\d{4}", prompt)
    return f"- notes on {len(ids)} sentences" if ids else SUMMARY


@pytest.fixture
def session(openai_server, monkeypatch):
    for name in ("LOLLMS_MAGICS_BINDING", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    shared_memory().clear()
    InteractiveShell.instance()
    openai_server.reply = reply
    s = Session("openai", "test-model", openai_server.url)
    yield s
    s.close()
    shared_memory().clear()


def run(panel):
    with capture_output() as cap:
        assert panel.run(), panel.status.value
        assert panel.wait(30)
    return cap


def result_text(panel) -> str:
    return "".join(entry["data"]["text/markdown"] for entry in panel.result.outputs)


def test_an_uploaded_file_is_summarized_in_chunks_with_progress(session, openai_server):
    text = document().encode()
    panel = panels.summarize(session)
    panel.upload.set_state({"value": [{"name": "minutes.md", "type": "text/markdown", "size": len(text),
                                       "content": memoryview(text), "last_modified": 1700000000000}]})
    seen, shown = [], []
    panel.progress.observe(lambda change: seen.append(change["new"]), names="value")
    panel.interval = 0.0  # every piece of the final summary reaches the browser
    # With a form asked for, the summary is the model's text alone (no "Key facts" list).
    panel.format.value = "one bullet"
    panel.result.observe(lambda change: shown.extend(e["data"]["text/markdown"] for e in change["new"]),
                         names="outputs")
    cap = run(panel)
    summary = panel.summary
    assert summary is not None and summary.complete and summary.chunks > 1
    assert summary.text.strip() == SUMMARY
    assert result_text(panel).strip() == SUMMARY
    partial = [text for text in shown if text.endswith(" ▍")]
    assert len(partial) > 2 and all(SUMMARY.startswith(t[:-2]) for t in partial)  # it streamed in
    assert panel.progress.value == panel.progress.max and panel.progress.bar_style == "success"
    assert len(set(seen)) > 2  # the bar moved step by step
    requests = openai_server.requests_to("/v1/chat/completions")
    sent = [message_text(r.json["messages"][-1]["content"]) for r in requests]
    assert any("S0000" in s for s in sent) and any("S0119" in s for s in sent)
    record = cap.outputs[-1]
    head = record.data["text/markdown"].splitlines()[0]
    assert head.startswith(f"**lollms summary** of `minutes.md` (map-reduce, {summary.chunks} chunk(s), "
                           f"{summary.calls} call(s), ")
    assert record.data["text/markdown"].endswith(SUMMARY)
    assert record.metadata["lollms_magics"]["complete"] is True
    assert panel.upload.value == ()
    assert not panel.start.disabled and panel.stop.disabled


def test_a_variable_name_or_a_path_is_summarized(session, openai_server, tmp_path):
    shell = InteractiveShell.instance()
    shell.user_ns["report"] = "The harbour opened in 1852. Ships came from Lisbon."
    panel = panels.summarize(session)
    panel.source.value = "report"
    run(panel)
    assert "The harbour opened in 1852" in str(openai_server.last_request.json["messages"])
    assert panel.summary.chunks == 1 and panel.progress.value == panel.progress.max  # one call: a full bar
    assert ">done in " in panel.status.value and "1 chunk(s), 1 call(s)" in panel.status.value
    path = tmp_path / "notes.txt"
    path.write_text("The lighthouse was lit in 1901 by the keeper Anna.")
    panel.source.value = str(path)
    panel.mode.value = "sequential"
    panel.instruction.value = "the dates"
    cap = run(panel)
    sent = str(openai_server.last_request.json["messages"])
    assert "The lighthouse was lit in 1901" in sent and "the dates" in sent
    assert f"**lollms summary** of `{path}`" in cap.outputs[-1].data["text/markdown"]
    del shell.user_ns["report"]


def test_a_missing_file_is_said_in_the_panel_before_any_request(session, openai_server, tmp_path):
    panel = panels.summarize(session)
    panel.source.value = str(tmp_path / "nowhere.pdf")
    run(panel)
    assert f"file not found: {tmp_path / 'nowhere.pdf'}" in panel.status.value
    assert openai_server.requests_to("/v1/chat/completions") == []
    panel.source.value = ""
    assert not panel.run()
    assert "choose a file, or give a path, a URL or a variable&#x27;s name" in panel.status.value


def test_stop_cuts_the_request_in_flight_and_keeps_no_cut_answer(session, openai_server):
    openai_server.slow_pieces, openai_server.slow_delay = 400, 0.02  # eight seconds per call
    session.use("openai", "slow", openai_server.url)
    panel = panels.summarize(session)
    panel.source.value = "report"
    InteractiveShell.instance().user_ns["report"] = document(2)
    with capture_output() as cap:
        assert panel.run()
        deadline = time.monotonic() + 5
        while not openai_server.requests_to("/v1/chat/completions") and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        stopped = time.monotonic()
        panel.stop.click()
        assert panel.wait(5)
        took = time.monotonic() - stopped
    assert took < 3.0  # a call takes eight seconds
    assert openai_server.wait_for_disconnect()
    assert panel.summary is not None and not panel.summary.complete
    assert "stopped" in cap.outputs[-1].data["text/markdown"].splitlines()[0]
    assert shared_memory()._items == {}  # the cut answer was not kept for a resume
    assert "stopped; what was done is kept" in panel.status.value
    assert panel.progress.bar_style == "warning"
    del InteractiveShell.instance().user_ns["report"]


def test_the_record_holds_no_key(session, openai_server, monkeypatch):
    key = "sk-summary-secret-0123456789"
    openai_server.api_key = key
    session.set_key("openai", key)
    panel = panels.summarize(session)
    InteractiveShell.instance().user_ns["report"] = f"The key {key} must never be shown. The harbour is old."
    panel.source.value = "report"
    openai_server.reply = lambda prompt: prompt[-200:]  # a model that repeats what it read
    cap = run(panel)
    assert key not in str([(o.data, o.metadata) for o in cap.outputs])
    assert key not in result_text(panel)
    del InteractiveShell.instance().user_ns["report"]


class FakeResponse:
    def __init__(self) -> None:
        self.cancelled = False

    def __iter__(self):
        if not self.cancelled:
            yield "piece"

    def cancel(self) -> None:
        self.cancelled = True


class FakeBinding:
    model = "fake"

    def __init__(self, on_generate=None) -> None:
        self.on_generate = on_generate
        self.made: list[FakeResponse] = []

    def generate(self, *args, **kwargs):
        if self.on_generate is not None:
            self.on_generate()
        self.made.append(FakeResponse())
        return self.made[-1]


def test_a_stop_during_the_request_cancels_its_answer_and_raises_cancelled():
    import threading

    from lollms_magics.summaries.calls import Cancelled
    from lollms_magics.widgets.summarize import StoppableBinding

    stop = threading.Event()
    binding = StoppableBinding(FakeBinding(on_generate=stop.set), stop)  # Stop pressed while sending
    response = binding.generate([])
    assert binding._binding.made[0].cancelled
    with pytest.raises(Cancelled):
        list(response)
    with pytest.raises(Cancelled):
        binding.generate([])  # no new request once stopped
    assert len(binding._binding.made) == 1
    assert binding.model == "fake"  # everything else is the binding's own


def test_stop_cancels_every_answer_in_flight():
    import threading

    from lollms_magics.widgets.summarize import StoppableBinding

    stop = threading.Event()
    binding = StoppableBinding(FakeBinding(), stop)
    first = binding.generate([])
    binding.generate([])  # a second request, still streaming
    assert list(first) == ["piece"]  # a finished answer leaves the live set
    stop.set()
    binding.cancel_all()
    assert [r.cancelled for r in binding._binding.made] == [False, True]
    assert binding._live == {binding._binding.made[1]}
