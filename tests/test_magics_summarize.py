"""``%lollms summarize`` and ``%%lollms summarize`` in a real InteractiveShell, against loopback servers."""

from __future__ import annotations

import _thread
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from lollms_magics.summaries import Summary
from lollms_magics.summaries.resume import shared_memory
from tests.servers import OpenAIServer
from tests.shell import CHOICE, magics_shell
from tests.test_summarize import all_ids, chat_requests, make_document, note_reply, part_ids, serve, user_text

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    shared_memory().clear()
    with magics_shell(monkeypatch, unset=(*CHOICE, "OPENAI_BASE_URL")) as shell:
        yield shell


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    srv = serve()
    yield srv
    srv.stop()


def target(server: OpenAIServer) -> str:
    return f"-b openai --host {server.url} -m test-model --ctx-size 700"


def widgets(cap: Any) -> list[Any]:
    return [o for o in cap.outputs if "application/vnd.jupyter.widget-view+json" in o.data]


def test_a_variable_is_summarized_with_a_progress_bar_and_a_streamed_summary(
    ip: InteractiveShell, server: OpenAIServer
) -> None:
    ip.user_ns["report"] = make_document()
    with capture_output() as cap:
        ip.run_line_magic("lollms", f"summarize report {target(server)} --out s")
    result = ip.user_ns["s"]
    assert isinstance(result, Summary) and result.complete and result.chunks > 3
    assert [i for r in chat_requests(server) for i in part_ids(r)] == all_ids(make_document())
    assert len(widgets(cap)) == 1  # the bar: an IntProgress beside its label
    markdown = [o.data["text/markdown"] for o in cap.outputs if "text/markdown" in o.data]
    assert markdown[-1] == result.text  # the summary's display ends with the whole text


def test_the_cell_body_is_the_instruction(ip: InteractiveShell, server: OpenAIServer, tmp_path: Path) -> None:
    (tmp_path / "report.md").write_text(make_document(), encoding="utf-8")
    with capture_output():
        ip.run_cell_magic(
            "lollms", f"summarize {tmp_path / 'report.md'} {target(server)}", "List the years.\n"
        )
    chunks = [r for r in chat_requests(server) if part_ids(r)]
    assert chunks and all("List the years." in user_text(r) for r in chunks)


def test_without_source_the_cell_body_is_the_text(ip: InteractiveShell, server: OpenAIServer) -> None:
    with capture_output():
        ip.run_cell_magic("lollms", f"summarize {target(server)} --out s", make_document())
    assert ip.user_ns["s"].complete
    assert [i for r in chat_requests(server) for i in part_ids(r)] == all_ids(make_document())


def test_hosts_share_the_work(ip: InteractiveShell) -> None:
    first, second = serve(request_delay=0.05), serve(request_delay=0.05)
    try:
        ip.user_ns["report"] = make_document(sections=16)
        with capture_output():
            ip.run_line_magic(
                "lollms",
                f"summarize report -b openai -m test-model --ctx-size 600 --hosts {first.url},{second.url} "
                "--concurrency 2 --out s",
            )
    finally:
        first.stop()
        second.stop()
    assert ip.user_ns["s"].complete
    a = [i for r in chat_requests(first) for i in part_ids(r)]
    b = [i for r in chat_requests(second) for i in part_ids(r)]
    assert a and b and sorted(a + b) == all_ids(make_document(sections=16))


def test_show_steps_adds_the_notes_collapsed(ip: InteractiveShell, server: OpenAIServer) -> None:
    ip.user_ns["report"] = make_document()
    with capture_output() as cap:
        ip.run_line_magic("lollms", f"summarize report {target(server)} --show-steps")
    html = [
        o.data["text/html"]
        for o in cap.outputs
        if "text/html" in o.data and "<details>" in o.data["text/html"]
    ]
    assert len(html) == 1
    assert html[0].startswith("<details><summary>")
    assert "this part runs from sentence 1 " in html[0]


def test_a_terminal_gets_a_text_bar_and_the_summary_on_stdout(
    ip: InteractiveShell, server: OpenAIServer
) -> None:
    ip.run_line_magic("config", "LollmsMagics.stream_to = 'stdout'")
    ip.user_ns["report"] = make_document()
    with capture_output() as cap:
        ip.run_line_magic("lollms", f"summarize report {target(server)} --out s")
    result = ip.user_ns["s"]
    assert result.text in cap.stdout
    assert f"chunk {result.chunks}/{result.chunks}" in cap.stderr and "left" in cap.stderr
    assert "done in" in cap.stderr
    assert not widgets(cap)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("summarize nope.pdf", "%lollms summarize: file not found: nope.pdf"),
        (
            "summarize",
            "usage: %lollms summarize SOURCE [options] (or %%lollms summarize with the text in the cell)",
        ),
        (
            "summarize report --mode fast",
            "%lollms summarize: argument --mode: invalid choice: 'fast' "
            "(choose from 'auto', 'sequential', 'map-reduce')",
        ),
        ("summarize report --out 1x", "%lollms summarize: --out needs a variable name, not '1x'"),
    ],
)
def test_mistakes_are_one_line(ip: InteractiveShell, server: OpenAIServer, line: str, message: str) -> None:
    ip.user_ns["report"] = "some text"
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("lollms", f"{line} {target(server)}")
    assert str(caught.value) == message
    assert chat_requests(server) == []


def test_a_context_too_small_is_a_usage_error(ip: InteractiveShell, server: OpenAIServer) -> None:
    ip.user_ns["report"] = make_document()
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic(
            "lollms", f"summarize report -b openai --host {server.url} -m test-model --ctx-size 200"
        )
    assert str(caught.value).startswith("%lollms: a context of 200 tokens is too small for the prompts")


def test_an_interrupt_keeps_what_was_done_and_a_rerun_resumes(
    ip: InteractiveShell, server: OpenAIServer
) -> None:
    answered: list[str] = []

    def reply(prompt: str) -> str:
        answered.append(prompt)
        if len(answered) == 3:
            _thread.interrupt_main()  # Ctrl-C while the third chunk is being answered
        return note_reply(prompt)

    server.reply = reply
    ip.user_ns["report"] = make_document()
    line = f"summarize report {target(server)} --mode map-reduce --out s"
    with capture_output() as cap, pytest.raises(KeyboardInterrupt):
        ip.run_line_magic("lollms", line)
    partial = ip.user_ns["s"]
    assert not partial.complete and partial.error == "interrupted"
    assert "lollms: interrupted; " in cap.stderr and "run the cell again to resume" in cap.stderr
    before = len(chat_requests(server))

    server.reply = note_reply
    with capture_output():
        ip.run_line_magic("lollms", line)
    again = ip.user_ns["s"]
    assert again.complete and again.cached >= 2
    assert again.calls == len(chat_requests(server)) - before < partial.chunks + 1


def test_a_backend_failure_fails_the_cell_and_keeps_the_notes(
    ip: InteractiveShell, server: OpenAIServer
) -> None:
    answered: list[str] = []

    def reply(prompt: str) -> str:
        answered.append(prompt)
        if len(answered) == 2:
            server.fail_next.extend([(500, {})] * 20)
        return note_reply(prompt)

    server.reply = reply
    ip.user_ns["report"] = make_document()
    with capture_output():
        result = ip.run_cell(f"%lollms summarize report {target(server)} --mode sequential --out s")
    assert result.error_in_exec is not None
    message = result.error_in_exec._render_traceback_()[0]
    assert "failed (500: The server had an error while processing your request.)" in message
    assert message.endswith("2 of 12 chunks done; what was done is in s; run the cell again to resume\x1b[0m")
    assert "this part runs from sentence 1 " in ip.user_ns["s"].text


def test_help_lists_summarize(ip: InteractiveShell) -> None:
    with capture_output() as cap:
        ip.run_line_magic("lollms", "help")
    assert "%lollms summarize SOURCE [options]" in cap.stdout
