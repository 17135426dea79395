"""The magics over the Session: subcommand options, status, notes, footer, reasoning, settings."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from IPython.core.error import UsageError

from lollms_magics.bindings import lollms
from tests.servers import LOLLMS_KEY
from tests.test_magics import cell, failing_cell, final, ip  # noqa: F401  (ip is the fixture)


def test_subcommands_take_the_binding_and_host_options(ip, ollama_server):  # noqa: F811
    cap = cell(ip, f"-b ollama --host {ollama_server.url} models")
    assert cap.stdout.split() == ["test-model:latest", "vision-model:latest"]
    assert ollama_server.requests_to("/api/chat") == []  # "models" was not sent as a prompt
    cap = cell(ip, f"models -b ollama --host {ollama_server.url}")
    assert "test-model:latest" in cap.stdout


def test_use_auto_returns_to_the_automatic_choice(ip, openai_server, monkeypatch):  # noqa: F811
    from lollms_magics.core import auto

    calls = []

    def choose(timeout=0.5):
        calls.append(timeout)
        return auto.AutoChoice("openai", openai_server.url, "test-model", "an OpenAI server answered")

    monkeypatch.setattr(auto, "choose_binding", choose)
    cell(ip, f"use ollama --host {openai_server.url}")
    assert "set with %lollms use" in cell(ip, "status").stdout
    assert "back to the automatic choice" in cell(ip, "use auto").stdout
    cell(ip, "", "hi")
    assert len(calls) == 1
    assert final(cell(ip, "", "again")).metadata["lollms_magics"]["binding"] == "openai"
    assert len(calls) == 1  # made once


def test_the_automatic_choice_is_made_again_when_its_server_goes_away(ip, openai_server, monkeypatch):  # noqa: F811
    from lollms_magics.core import auto

    hosts = [openai_server.url]

    def choose(timeout=0.5):
        return auto.AutoChoice("openai", hosts[-1], "test-model", "an OpenAI server answered")

    monkeypatch.setattr(auto, "choose_binding", choose)
    cell(ip, "", "hi")
    hosts.append("http://127.0.0.1:9")  # the next choice, should it be asked for
    openai_server.stop()
    failing_cell(ip, "", "hi again")
    assert ip.lollms.session._auto is None  # forgotten: the next prompt chooses again
    _, cap = failing_cell(ip, "", "and again")
    assert "127.0.0.1:9" in cap.stdout


def test_status_shows_the_host_found_and_the_backend_last_used(ip, lollms_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("LOLLMS_API_KEY", LOLLMS_KEY)
    monkeypatch.setattr(lollms, "WEBUI_HOST", "http://127.0.0.1:9")  # nothing on the old port
    monkeypatch.setattr(lollms, "SERVER_HOST", lollms_server.url)
    cell(ip, "-b lollms -m ollama/test-model", "hello")
    status = cell(ip, "status").stdout
    assert f"host     {lollms_server.url}\n" in status  # where the binding really went
    assert "binding  lollms (chosen for this prompt)" in status
    assert "history  1 exchange(s) with lollms:ollama/test-model" in status


def test_status_after_per_cell_bindings_shows_the_last_one(ip, ollama_server):  # noqa: F811
    cell(ip, f"-b ollama --host {ollama_server.url}", "one")
    cell(ip, f"-b ollama --host {ollama_server.url}", "two")
    status = cell(ip, "status").stdout
    assert status.startswith("binding  ollama (chosen for this prompt)\n")
    assert "server   answers, 2 model(s)" in status
    assert "history  2 exchange(s) with ollama" in status


def test_a_cut_history_is_said_in_a_quiet_line(ip, openai_server):  # noqa: F811
    ip.lollms.context_size = 200
    line = f"-b openai --host {openai_server.url} -n 50"
    for n in range(3):
        cap = cell(ip, line, f"question {n} " + "x" * 160)
    notes = final(cap).metadata["lollms_magics"]["notes"]
    assert notes == ["history cut: 2 earlier exchange(s) left out to fit the 200-token window"]


def test_an_n_predict_that_cannot_fit_is_said(ip, openai_server):  # noqa: F811
    cap = cell(ip, f"-b openai --host {openai_server.url} -n 5000", "hi")
    assert final(cap).metadata["lollms_magics"]["notes"][0] == (
        "-n 5000 cannot fit in the 4096-token context window; the answer may stop early "
        "(raise --ctx-size or lower -n)"
    )


def test_a_conversation_changing_backend_is_said(ip, openai_server, ollama_server):  # noqa: F811
    cell(ip, f"-b openai --host {openai_server.url}", "one")
    cap = cell(ip, f"-b ollama --host {ollama_server.url}", "two")
    assert final(cap).metadata["lollms_magics"]["notes"] == [
        "continuing the conversation held with openai:test-model (--new starts a new one)"
    ]


def test_new_options_reach_the_wire(ip, ollama_server):  # noqa: F811
    cell(ip, f"-b ollama --host {ollama_server.url} --ctx-size 8192 --stop END --stop '##' "
         "--repeat-penalty 1.3", "hi")
    options = ollama_server.requests_to("/api/chat")[-1].json["options"]
    assert options == {"num_ctx": 8192, "stop": ["END", "##"], "repeat_penalty": 1.3}


def test_timeout_is_reachable_and_named_in_the_error(ip, openai_server):  # noqa: F811
    _, cap = failing_cell(ip, f"-b openai --host {openai_server.url} -m stall-before --timeout 0.5", "hi")
    assert "sent no text within 0.5 s" in cap.stdout
    assert "raise the timeout (--timeout" in cap.stdout
    assert "read_timeout" not in ip.lollms.session.binding_config  # for that cell only
    with pytest.raises(UsageError, match="--timeout needs a positive number"):
        ip.run_cell_magic("lollms", f"-b openai --host {openai_server.url} --timeout 0", "hi")


def test_code_format_adds_one_cell_per_prompt_cell(ip, openai_server, monkeypatch):  # noqa: F811
    added = []
    monkeypatch.setattr(ip, "set_next_input", lambda text, replace=False: added.append(text))
    monkeypatch.setattr(ip, "parent_header", {"metadata": {"cellId": "cell-c"}}, raising=False)
    line = f"-b openai --host {openai_server.url} -f code"
    cell(ip, line, "print(1)")
    cell(ip, line, "print(2)")  # the same cell, run again
    assert added == ["Echo: print(1)"]


def test_help_lists_the_settings_with_their_defaults(ip):  # noqa: F811
    text = cell(ip, "help").stdout
    # The values shown are the current ones (the fixture turned the footer off).
    for name, default in (("footer", "False"), ("timeout", "120.0"), ("context_size", "4096"),
                          ("fill_limit", "8000"), ("default_format", "'markdown'")):
        assert re.search(rf"^  {name}\s+{re.escape(default)}\s", text, re.M), name
    assert "%config LollmsMagics.NAME = VALUE" in text


def test_the_footer_shows_the_figures_and_can_be_turned_off(ip, openai_server):  # noqa: F811
    ip.run_line_magic("config", "LollmsMagics.footer = True")
    markdown = final(cell(ip, f"-b openai --host {openai_server.url}", "Say hi")).data["text/markdown"]
    answer, footer = markdown.split("\n\n")
    assert answer == "Echo: Say hi"
    assert re.fullmatch(r"<sub>test-model · 4 tokens · \d+\.\d tok/s · \d+\.\d s</sub>", footer)
    ip.run_line_magic("config", "LollmsMagics.footer = False")
    assert final(cell(ip, f"-b openai --host {openai_server.url}", "Say hi")).data["text/markdown"] == (
        "Echo: Say hi"
    )


def _reasoning_stream(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/models"):
        return httpx.Response(200, json={"object": "list", "data": [{"id": "r1"}]})
    events = [
        {"choices": [{"delta": {"role": "assistant", "reasoning_content": "Let me think"}}]},
        {"choices": [{"delta": {"reasoning_content": " about it."}}]},
        {"choices": [{"delta": {"content": "The answer"}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": " is 4."}, "finish_reason": "stop"}]},
    ]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})


def test_reasoning_is_shown_collapsed_apart_from_the_answer(ip):  # noqa: F811
    ip.lollms.session.binding_config["transport"] = httpx.MockTransport(_reasoning_stream)
    cap = cell(ip, "-b openai --host http://reasoner.test -o out", "2+2?")
    data = final(cap).data
    assert ip.user_ns["out"] == "The answer is 4." == data["text/plain"]
    assert data["text/markdown"] == (
        "<details><summary>Reasoning</summary>\n\nLet me think about it.\n\n</details>\n\n"
        "The answer is 4."
    )
    assert ip.lollms.session.history()[-1].answer == "The answer is 4."
