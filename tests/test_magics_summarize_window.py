"""``%lollms summarize --ctx-size``: the window the parts were planned for is the one the server uses."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from tests.servers import OllamaServer, OpenAIServer
from tests.test_magics_summarize import ip  # noqa: F401 - the fixture
from tests.test_summarize import make_document, note_reply

pytestmark = pytest.mark.timeout(60)


def test_ctx_size_is_sent_to_ollama_as_num_ctx(
    ip: InteractiveShell,  # noqa: F811
    ollama_server: OllamaServer,
) -> None:
    ollama_server.reply = note_reply
    ip.user_ns["report"] = make_document(sections=40)
    target = f"-b ollama --host {ollama_server.url} -m test-model --ctx-size 16384"
    with capture_output() as cap:
        ip.run_line_magic("lollms", f"summarize report {target} --out s")
    result = ip.user_ns["s"]
    requests = ollama_server.requests_to("/api/chat")
    assert result.complete and requests and len(requests) == result.calls
    assert {r.json["options"]["num_ctx"] for r in requests} == {16384}
    assert "context size" not in cap.stderr


def test_a_server_that_keeps_its_own_window_is_said(
    ip: InteractiveShell,  # noqa: F811
    openai_server: OpenAIServer,
) -> None:
    openai_server.reply = note_reply
    ip.user_ns["report"] = make_document()
    with capture_output() as cap:
        ip.run_line_magic(
            "lollms", f"summarize report -b openai --host {openai_server.url} -m test-model --ctx-size 700"
        )
    assert (
        f"lollms: openai at {openai_server.url}/v1 cannot be given a context size: its server keeps its own "
        "window, which must hold 700 tokens or the parts are cut"
    ) in cap.stderr
