"""``%lollms status`` says what the next prompt really sends of the conversation (issue 16).

Each claim of the status line is checked against the request the next cell
then sends to a loopback server.
"""

from __future__ import annotations

import re

from lollms_magics.core.session import Session
from tests.test_magics import cell, ip  # noqa: F401  (ip is the fixture)


def history_line(ip):  # noqa: F811
    [line] = [x for x in cell(ip, "status").stdout.splitlines() if x.startswith("history")]
    return line


def numbers(text):
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", text)]


def sent_messages(server):
    return server.requests_to("/v1/chat/completions")[-1].json["messages"]


def test_a_long_answer_is_said_left_out_not_counted_against_the_window(ip, openai_server):  # noqa: F811
    line = f"-b openai --host {openai_server.url}"
    cell(ip, line, "x" * 20_000)  # the echo answers as long: far more than the 4,096-token window
    history = history_line(ip)
    assert "1 exchange(s) with openai:test-model: the next prompt sends none of them" in history
    assert "history cut: 1 older left out" in history and "4,096-token window" in history
    # the only number above the window is the one said to be left out
    left_out = int(re.search(r"left out \(~([\d,]+) tokens\)", history).group(1).replace(",", ""))
    assert [n for n in numbers(history) if n > 4096] == [left_out]
    cell(ip, line, "hi")
    assert [m["content"] for m in sent_messages(openai_server)] == ["hi"]  # what the status said


def test_the_status_names_the_exchanges_the_next_prompt_sends(ip, openai_server):  # noqa: F811
    ip.lollms.context_size = 600  # 450 tokens for a prompt and its history
    line = f"-b openai --host {openai_server.url}"
    for n in range(5):
        cell(ip, line, f"question {n} " + "y" * 150)
    history = history_line(ip)
    match = re.search(r"the next prompt sends the last (\d+), ~([\d,]+) of the ([\d,]+) tokens", history)
    assert match, history
    kept, used, budget = (int(g.replace(",", "")) for g in match.groups())
    assert 0 < kept < 5 and used <= budget == 450
    assert f"history cut: {5 - kept} older left out" in history and "600-token window" in history
    cell(ip, line, "z")
    assert len(sent_messages(openai_server)) == 2 * kept + 1


def test_a_history_that_fits_is_said_sent_whole(ip, openai_server):  # noqa: F811
    line = f"-b openai --host {openai_server.url}"
    cell(ip, line, "one")
    cell(ip, line, "two")
    history = history_line(ip)
    assert history.startswith("history  2 exchange(s) with openai:test-model: the next prompt sends all, ~")
    assert "of the 3,072 tokens a prompt may use (4,096-token window, 1,024 kept for the answer)" in history
    cell(ip, line, "three")
    assert [m["content"] for m in sent_messages(openai_server)][::2] == ["one", "two", "three"]


def test_the_ctx_size_option_is_the_window_the_status_uses(ollama_server):
    session = Session("ollama", model="test-model", host=ollama_server.url, ctx_size=1024, n_predict=100)
    assert session.ask("a" * 600, key="cell-1").text
    history = dict(session.status(check=False).rows)["history"]
    assert "924 tokens a prompt may use (1,024-token window, 100 kept for the answer)" in history
    assert "sends all" in history
    assert session.ask("b" * 3_000, key="cell-2").text  # 1,000 tokens and more: no longer fits
    history = dict(session.status(check=False).rows)["history"]
    assert "the next prompt sends none of them; history cut: 2 older left out" in history
    assert "1,024-token window" in history
    assert session.ask("c", key="cell-3").text
    assert [m["content"] for m in ollama_server.requests_to("/api/chat")[-1].json["messages"]] == ["c"]


def test_an_empty_history_says_the_room_a_prompt_has(openai_server):
    history = dict(Session("openai", host=openai_server.url).status(check=False).rows)["history"]
    assert history.startswith("no exchange yet; 3,072 tokens a prompt may use")
