"""``%lollms sent`` shows the last request as it went out; ``%lollms usage`` adds up answers (issue 18)."""

from __future__ import annotations

import base64
import json
import re

import pytest
from IPython.core.error import UsageError

from lollms_magics.core.sent import SentRequest, describe
from lollms_magics.core.session import Session
from tests.servers import tiny_png
from tests.test_magics import cell, final, ip  # noqa: F401  (ip is the fixture)

KEY = "sk-test-0123456789abcdefSECRET"


def key_forms(key):
    """Spellings a key could leak in: raw, JSON-quoted, base64, as a bearer header, URL-escaped."""
    return [key, json.dumps(key), base64.b64encode(key.encode()).decode(), f"Bearer {key}",
            key.replace("-", "%2D")]


def test_sent_shows_every_message_and_option_with_the_key_never_shown(ip, openai_server, monkeypatch):  # noqa: F811
    openai_server.api_key = KEY  # the server refuses requests without it: it was really sent
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    ip.user_ns["pic"] = tiny_png(4, 4)
    line = f"-b openai --host {openai_server.url} -t 0.2 --seed 7"
    cell(ip, line, "First question")
    long_prompt = "start " + "word " * 1_000 + "finish"
    cell(ip, f"{line} -s 'Answer briefly.' -i pic", long_prompt)
    shown = cell(ip, "sent").stdout

    got = openai_server.requests_to("/v1/chat/completions")[-1]
    assert got.headers["authorization"] == f"Bearer {KEY}"  # the key went out, in the header
    for form in key_forms(KEY):
        assert form not in shown
    assert "binding  openai" in shown and "model    test-model" in shown
    assert f"host     {openai_server.url}" in shown
    assert "seed=7" in shown and "temperature=0.2" in shown
    # every message the server received, in order, by its role
    roles = re.findall(r"^--- \[\d+\] (\w+)$", shown, re.M)
    assert roles == [m["role"] for m in got.json["messages"]] == ["system", "user", "assistant", "user"]
    assert "Answer briefly." in shown and "First question" in shown and "Echo: First question" in shown
    # the long prompt keeps its head and tail; the picture is named, its base64 never shown
    assert "start word" in shown and "finish" in shown and "characters elided]" in shown
    assert long_prompt not in shown and len(shown) < 5_000
    picture = base64.b64encode(tiny_png(4, 4)).decode()
    assert "<image image/png" in shown and picture not in shown and picture[:40] not in shown


def test_a_key_anywhere_in_a_kept_request_is_masked():
    session = Session()
    session.set_key("openai", KEY)
    request = SentRequest(
        "openai", "m", f"http://user:{KEY}@example.test/v1?api_key={KEY}",
        [{"role": "user", "content": f"pasted {KEY} and {json.dumps(KEY)}"}], {"stop": [KEY]},
    )
    shown = describe(request, session.keys.redact)
    assert KEY not in shown and shown.count("***") >= 4


def test_sent_before_any_prompt_says_so(ip):  # noqa: F811
    assert cell(ip, "sent").stdout == "lollms: nothing sent yet in this session\n"


def test_sent_with_words_after_it_is_a_prompt(ip, openai_server):  # noqa: F811
    ip.lollms.session.use("openai", host=openai_server.url)
    cap = cell(ip, "sent me a letter")
    assert final(cap).data["text/markdown"] == "Echo: sent me a letter"


def figures(cap):
    info = final(cap).metadata["lollms_magics"]
    return info["prompt_tokens"], info["completion_tokens"], info["duration"]


def usage_rows(text):
    rows = {}
    for line in text.splitlines()[1:]:
        name, calls, given, made, seconds, *cost = line.split()
        counts = [int(n.replace(",", "")) for n in (calls, given, made)]
        rows[name] = (*counts, float(seconds), cost)
    return rows


def test_usage_adds_up_the_answers_of_two_backends(ip, openai_server, ollama_server):  # noqa: F811
    seen = [
        figures(cell(ip, f"-b openai --host {openai_server.url}", "one")),
        figures(cell(ip, f"-b openai --host {openai_server.url}", "two, a longer question")),
        figures(cell(ip, f"-b ollama --host {ollama_server.url} -m test-model", "three")),
    ]
    rows = usage_rows(cell(ip, "usage").stdout)
    assert set(rows) == {"openai:test-model", "ollama:test-model", "total"}
    calls, given, made, seconds, cost = rows["openai:test-model"]
    assert (calls, given, made) == (2, seen[0][0] + seen[1][0], seen[0][1] + seen[1][1])
    assert abs(seconds - (seen[0][2] + seen[1][2])) < 0.15 and cost == []
    assert rows["ollama:test-model"][:3] == (1, seen[2][0], seen[2][1])
    assert rows["total"][:3] == (3, sum(s[0] for s in seen), sum(s[1] for s in seen))
    assert min(seen[0][:2]) > 0 and min(seen[2][:2]) > 0  # both servers reported counts


def test_a_cost_column_comes_only_from_the_users_prices(ip, openai_server, ollama_server):  # noqa: F811
    given, made, _ = figures(cell(ip, f"-b openai --host {openai_server.url}", "price me"))
    cell(ip, f"-b ollama --host {ollama_server.url} -m test-model", "free?")
    assert "cost" not in cell(ip, "usage").stdout
    ip.run_line_magic("config", "LollmsMagics.prices = {'openai:test-model': (2.0, 10.0)}")
    text = cell(ip, "usage").stdout
    rows = usage_rows(text)
    assert text.splitlines()[0].split()[-1] == "cost"
    assert rows["openai:test-model"][4] == [f"{(given * 2 + made * 10) / 1e6:.4f}"]
    assert rows["ollama:test-model"][4] == ["no", "price"]
    assert rows["total"][4] == [f"{(given * 2 + made * 10) / 1e6:.4f}", "+", "unpriced"]


def test_a_malformed_price_table_is_a_usage_error(ip, openai_server):  # noqa: F811
    cell(ip, f"-b openai --host {openai_server.url}", "hi")
    ip.run_line_magic("config", "LollmsMagics.prices = {'test-model': 3}")
    with pytest.raises(UsageError, match="two numbers"):
        ip.run_line_magic("lollms", "usage")


def test_usage_reset_counts_from_zero(ip, openai_server):  # noqa: F811
    cell(ip, f"-b openai --host {openai_server.url}", "hi")
    assert "openai:test-model" in cell(ip, "usage").stdout
    cell(ip, "usage reset")
    assert cell(ip, "usage").stdout == "lollms: no answers yet in this session\n"


def test_help_lists_the_new_commands_and_settings(ip):  # noqa: F811
    text = cell(ip, "help").stdout
    for usage in ("%lollms sent ", "%lollms usage [reset]", "%lollms explain ", "%lollms fix ",
                  "%lollms history [--export FILE]"):
        assert f"\n  {usage}" in text, usage
    assert "\n  context_cells      0 " in text and "\n  prices             {} " in text
    context_help = " ".join(text[text.index("--context N"):text.index("--docs")].split())
    assert "not Markdown cells, printed output or the order of cells on screen" in context_help


def test_usage_counts_every_item_of_each(ip, openai_server):  # noqa: F811
    ip.user_ns["words"] = ["red", "green", "blue"]
    cell(ip, f"-b openai --host {openai_server.url} --each words --concurrency 2", "Say {item}")
    calls = usage_rows(cell(ip, "usage").stdout)["openai:test-model"][0]
    assert calls == len(openai_server.requests_to("/v1/chat/completions")) == 3


def test_usage_counts_every_call_of_a_summary(ip, openai_server):  # noqa: F811
    # A document of several parts: one call per part and the merge, each counted as the server saw it.
    line = "Section {n}. The harbour of town {n} handled {ships} ships in {year}. "
    ip.user_ns["report"] = "\n\n".join(
        line.format(n=n, ships=n * 1000, year=1990 + n) * 12 for n in range(12))
    cell(ip, f"-b openai --host {openai_server.url} summarize report --ctx-size 1024")
    sent = openai_server.requests_to("/v1/chat/completions")
    assert len(sent) > 2  # it did need several calls
    calls = usage_rows(cell(ip, "usage").stdout)["openai:test-model"][0]
    assert calls == len(sent)
