"""``%%lollms --docs SOURCE`` and ``Session.ask(..., docs=...)`` against a loopback OpenAI server."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from lollms_magics.core.docs import _chunks
from lollms_magics.core.session import Session
from lollms_magics.summaries.document import Document
from tests.servers import OpenAIServer
from tests.shell import CHOICE, magics_shell
from tests.test_summarize import chat_requests, serve, user_text

pytestmark = pytest.mark.timeout(60)
KEY = "sk-docs-" + secrets.token_hex(16)
FILLER = "Paragraph {i} says the committee discussed the weather, the tea and the minutes of the meeting."


def cite_the_fact(prompt: str) -> str:
    """An answer citing the label of the passage that holds "1742", as a model told to cite would."""
    for label, body in re.findall(r"^\[([^\]]+)\]\n(.*?)(?=\n\n\[|\n\nQuestion:)", prompt, re.S | re.M):
        if "1742" in body or "1815" in body:
            year = "1742" if "1742" in body else "1815"
            return f"The harbour was built in {year} [{label}]."
    return "The passages do not say."


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    session = Session(context_size=1024)
    with magics_shell(monkeypatch, unset=(*CHOICE, "OPENAI_BASE_URL"), session=session) as shell:
        yield shell


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    srv = serve(reply=cite_the_fact)
    yield srv
    srv.stop()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    fillers = "\n\n".join(FILLER.format(i=i) for i in range(80))
    (tmp_path / "harbour.md").write_text(
        f"# The town\n\n{fillers}\n\nThe harbour of Velmora was built in 1742 by the salt guild."
        f"\n\n{fillers}\n"
    )
    (tmp_path / "fruit.txt").write_text("Bananas grow in bunches and ripen yellow. " * 60)
    return tmp_path


def line(server: OpenAIServer, source: Path | str) -> str:
    return f"--docs {source} -b openai --host {server.url} -m test-model"


def details(cap: object) -> str:
    shown = [o.data.get("text/html", "") for o in cap.outputs]  # type: ignore[attr-defined]
    return next(h for h in shown if "<details" in h)


def test_the_passages_sent_hold_the_fact_under_a_label_and_fit_the_window(
    ip: InteractiveShell, server: OpenAIServer, folder: Path
) -> None:
    with capture_output():
        ip.run_cell_magic("lollms", line(server, folder), "When was the harbour of Velmora built?")
    (request,) = chat_requests(server)
    sent = user_text(request)
    blocks = re.findall(r"^\[([^\]]+)\]\n", sent, re.M)
    assert blocks and all(re.fullmatch(r"(harbour\.md|fruit\.txt) §\d+", b) for b in blocks)
    holding = [b for b in blocks if "1742" in sent.split(f"[{b}]\n", 1)[1].split("\n\n[")[0]]
    assert len(holding) == 1
    assert sent.rstrip().endswith("Question: When was the harbour of Velmora built?")
    assert "Bananas" not in sent  # shares no word with the question
    assert len(sent) < 1024 * 4  # far less than the document (16 kB): only what fits the window
    assert len(sent) < sum(len(p.read_text()) for p in folder.iterdir()) / 2


def test_the_citation_is_shown_and_the_passages_listed_collapsed(
    ip: InteractiveShell, server: OpenAIServer, folder: Path
) -> None:
    with capture_output() as cap:
        ip.run_cell_magic("lollms", line(server, folder), "When was the harbour of Velmora built?")
    label = re.search(r"\[(harbour\.md §\d+)\]", cap.outputs[-2].data["text/markdown"]).group(1)
    shown = details(cap)
    assert shown.startswith("<details") and "<summary>Passages sent:" in shown and ", cited: 1<" in shown
    first = shown.split("<li>")[1]  # the cited passage comes first, marked, with its text
    assert f"[{label}]</strong> <em>(cited)</em>" in first and "built in 1742 by the salt guild" in first


def test_the_index_is_kept_and_read_again_when_a_file_changes(
    ip: InteractiveShell, server: OpenAIServer, folder: Path
) -> None:
    session: Session = ip.lollms.session  # type: ignore[attr-defined]
    loads = []
    load = session.load_document
    session.load_document = lambda s: loads.append(s) or load(s)  # type: ignore[method-assign]
    question = "When was the harbour of Velmora built?"
    with capture_output():
        ip.run_cell_magic("lollms", line(server, folder), question)
        ip.run_cell_magic("lollms", line(server, folder), question)
    assert len(loads) == 1  # the second question re-used the index
    path = folder / "harbour.md"
    path.write_text(path.read_text().replace("1742", "1815"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))  # a coarse clock may not tick
    with capture_output() as cap:
        ip.run_cell_magic("lollms", line(server, folder), question)
    assert len(loads) == 2
    last = user_text(chat_requests(server)[-1])
    assert "built in 1815" in last and "1742" not in last
    assert "built in 1815" in cap.outputs[-2].data["text/markdown"]


def test_a_document_holding_a_key_is_refused_before_anything_is_sent(
    ip: InteractiveShell, server: OpenAIServer, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    (folder / "secrets.md").write_text(f"# Setup\n\nThe harbour office uses the key {KEY} for Velmora.\n")
    with pytest.raises(UsageError, match="holds an API key") as info:
        ip.run_cell_magic("lollms", line(server, folder), "When was the harbour of Velmora built?")
    assert KEY not in str(info.value)
    assert server.requests == []


def test_a_key_set_after_the_index_was_built_still_refuses_its_passage(
    server: OpenAIServer, folder: Path
) -> None:
    (folder / "secrets.md").write_text(f"# Setup\n\nThe Velmora harbour office uses the key {KEY}.\n")
    session = Session("openai", host=server.url, model="test-model", context_size=1024)
    assert "1742" in session.ask("When was the Velmora harbour built?", docs=str(folder)).text
    session.set_key("openai", KEY)
    with pytest.raises(Exception, match="holds an API key") as info:
        session.ask("Which key does the Velmora harbour office use?", docs=str(folder))
    assert KEY not in str(info.value)
    assert len(chat_requests(server)) == 1
    session.close()


def test_a_missing_source_is_one_line(ip: InteractiveShell, server: OpenAIServer, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("lollms", line(server, tmp_path / "nowhere.pdf"), "What does it say?")
    assert str(info.value) == f"%lollms: file not found: {tmp_path / 'nowhere.pdf'}"
    assert server.requests == []


def test_a_variable_is_a_source_from_python_and_the_answer_keeps_the_passages(server: OpenAIServer) -> None:
    text = "\n\n".join(FILLER.format(i=i) for i in range(40)) + "\n\nThe Velmora harbour dates from 1742."
    session = Session("openai", host=server.url, model="test-model", context_size=1024)
    answer = session.ask("When was the Velmora harbour built?", docs=text)
    assert answer.text.startswith("The harbour was built in 1742 [text §")
    assert any("1742" in p.text for p in answer.passages)  # type: ignore[attr-defined]
    assert session.history()[-1].prompt == "When was the Velmora harbour built?"  # not the passages
    session.close()


def test_pdf_pages_are_cited_by_page() -> None:
    pages = ["", "Intro words.", "The harbour dates from 1742."]
    pdf = Document("\n\n".join(pages), "report.pdf", pages=pages)
    assert [(p.label, p.text) for p in _chunks(pdf)] == [
        ("report.pdf p. 2", "Intro words."), ("report.pdf p. 3", "The harbour dates from 1742.")
    ]


def test_a_window_too_small_for_passages_is_a_usage_error(
    ip: InteractiveShell, server: OpenAIServer, folder: Path
) -> None:
    ip.lollms.session.context_size = 128  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match="left for the documents' passages; raise --ctx-size"):
        ip.run_cell_magic("lollms", line(server, folder), "When was the harbour of Velmora built?")
    assert server.requests == []


def test_a_terminal_gets_one_line_of_labels_with_the_cited_marked(
    ip: InteractiveShell, server: OpenAIServer, folder: Path
) -> None:
    ip.lollms.stream_to = "stdout"  # type: ignore[attr-defined]
    with capture_output() as cap:
        ip.run_cell_magic("lollms", line(server, folder), "When was the harbour of Velmora built?")
    label = re.search(r"\[(harbour\.md §\d+)\]", cap.stdout).group(1)  # type: ignore[union-attr]
    last = cap.stdout.strip().splitlines()[-1]
    assert last.startswith("passages sent (") and f"[{label}]*" in last
    assert last.count("*") == 2  # the legend's and the one cited passage's


def test_a_recorded_docs_question_replays_without_its_server(
    ip: InteractiveShell, server: OpenAIServer, folder: Path, tmp_path: Path
) -> None:
    tape = tmp_path / "docs.replay.jsonl"
    question, magic_line = "When was the harbour of Velmora built?", line(server, folder)
    with capture_output():
        ip.run_line_magic("lollms", f"record {tape}")
    with capture_output() as live:
        ip.run_cell_magic("lollms", magic_line, question)
    with capture_output():
        ip.run_line_magic("lollms", "record off")
    server.stop()
    ip.lollms.session.docs.clear()  # type: ignore[attr-defined]  # the index is built again, from the files
    with capture_output():
        ip.run_line_magic("lollms", f"replay {tape}")
    try:
        with capture_output() as again:
            ip.run_cell_magic("lollms", magic_line, question)
    finally:
        with capture_output():
            ip.run_line_magic("lollms", "replay off")
    answer = live.outputs[-2].data["text/markdown"]
    assert "built in 1742 [harbour.md §" in answer
    assert again.outputs[-2].data["text/markdown"] == answer
    assert details(again) == details(live)
