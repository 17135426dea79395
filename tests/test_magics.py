"""The %lollms / %%lollms magics in a real InteractiveShell, against the loopback servers."""

from __future__ import annotations

import _thread
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from lollms_magics.ipython.display import bundle, first_code_block
from lollms_magics.ipython.magics import LollmsMagics
from tests.servers import LOLLMS_KEY, tiny_png
from tests.shell import CHOICE, magics_shell


@pytest.fixture
def ip(monkeypatch):
    """The shell, with a fresh LollmsMagics (no history, keys or cached bindings)."""
    unset = (*CHOICE, "OPENAI_API_KEY", "OPENAI_BASE_URL", "LOLLMS_API_KEY", "LOLLMS_HOST", "OLLAMA_HOST")
    with magics_shell(monkeypatch, unset=unset, load_ext=True) as shell:
        yield shell


def cell(ip, line, body=None):
    """Run %%lollms (or %lollms when ``body`` is None) and return what it output."""
    with capture_output() as cap:
        if body is None:
            ip.run_line_magic("lollms", line)
        else:
            ip.run_cell_magic("lollms", line, body)
    return cap


def failing_cell(ip, line, body=None):
    """Run a cell that must fail as a notebook would; return (its error, its capture).

    The error fails the cell (Run All and nbval stop); what the user sees is
    the captured output.
    """
    source = f"%lollms {line}" if body is None else f"%%lollms {line}\n{body}"
    with capture_output() as cap:
        result = ip.run_cell(source)
    assert result.error_in_exec is not None, "the cell did not fail"
    return result.error_in_exec, cap


def final(cap):
    """The last display of a capture (the final answer)."""
    assert cap.outputs, f"nothing displayed; stderr: {cap.stderr!r}"
    return cap.outputs[-1]


def last_user_message(server):
    return server.requests_to("/v1/chat/completions")[-1].json["messages"][-1]["content"]


# -- streaming and the final output -------------------------------------------


def test_streams_then_shows_one_markdown_output_with_metadata(ip, openai_server):
    cap = cell(ip, f"-b openai --host {openai_server.url} -o answer", "Say hello")
    first, last = cap.outputs[0], final(cap)
    assert not first.update and "text/plain" in first.data  # the live view
    assert last.update  # the same display, replaced
    assert last.data["text/markdown"] == "Echo: Say hello"
    info = last.metadata["lollms_magics"]
    assert info["binding"] == "openai" and info["model"] == "test-model"
    assert info["completion_tokens"] > 0 and info["duration"] > 0
    assert info["format"] == "markdown" and info["stream"] is True
    assert ip.user_ns["answer"] == "Echo: Say hello"
    assert cap.stderr == ""


@pytest.mark.parametrize("fixture,binding", [
    ("openai_server", "openai"),
    ("ollama_server", "ollama"),
    ("lollms_webui_server", "lollms"),
])
def test_every_binding_streams_into_the_cell(ip, request, fixture, binding):
    server = request.getfixturevalue(fixture)
    cap = cell(ip, f"-b {binding} --host {server.url} -m test-model", "Name a colour")
    assert final(cap).data["text/markdown"] == "Echo: Name a colour"
    assert final(cap).metadata["lollms_magics"]["binding"] == binding


def test_lollms_server_with_its_key(ip, lollms_server, monkeypatch):
    monkeypatch.setenv("LOLLMS_API_KEY", LOLLMS_KEY)
    cap = cell(ip, f"-b lollms --host {lollms_server.url} -m ollama/test-model", "Hi")
    assert final(cap).data["text/markdown"] == "Echo: Hi"
    assert LOLLMS_KEY not in json.dumps(final(cap).metadata)


def test_no_stream_shows_only_the_final_output(ip, openai_server):
    cap = cell(ip, f"-b openai --host {openai_server.url} --no-stream", "Hi")
    assert len(cap.outputs) == 1
    assert cap.outputs[0].data["text/markdown"] == "Echo: Hi"
    assert openai_server.last_request.json.get("stream") in (False, None)


@pytest.mark.parametrize("fmt,mime", [("text", "text/plain"), ("html", "text/html"),
                                      ("markdown", "text/markdown")])
def test_formats(ip, openai_server, fmt, mime):
    cap = cell(ip, f"-b openai --host {openai_server.url} -f {fmt}", "<b>bold</b>")
    assert final(cap).data[mime] == "Echo: <b>bold</b>"
    assert final(cap).metadata["lollms_magics"]["format"] == fmt


def test_json_format_parses_json_and_falls_back_to_markdown():
    assert bundle('```json\n{"a": [1, 2]}\n```', "json")["application/json"] == {"a": [1, 2]}
    assert bundle("not json", "json") == {"text/markdown": "not json", "text/plain": "not json"}


def test_code_format_puts_the_first_code_block_in_a_new_cell(ip, openai_server, monkeypatch):
    inserted = []
    monkeypatch.setattr(ip, "set_next_input", lambda text, replace=False: inserted.append(text))
    cell(ip, f"-b openai --host {openai_server.url} -f code",
         "Here:\n```python\nprint('a')\n```\nand\n```\nsecond()\n```")
    assert inserted == ["print('a')"]
    assert first_code_block("no fence at all") == "no fence at all"


def test_one_line_form(ip, openai_server):
    cap = cell(ip, f"-b openai --host {openai_server.url} -t 0.5 What's up? {{'a': 1}}")
    assert final(cap).data["text/markdown"] == "Echo: What's up? {'a': 1}"
    assert openai_server.last_request.json["temperature"] == 0.5


def test_terminal_ipython_streams_to_stdout(ip, openai_server):
    with capture_output(display=False) as cap:  # the terminal's plain DisplayPublisher stays
        ip.run_cell_magic("lollms", f"-b openai --host {openai_server.url}", "Hi there")
    assert cap.stdout == "Echo: Hi there\n"
    assert cap.outputs == []


# -- the throttle --------------------------------------------------------------


def test_updates_are_bounded_by_time_not_by_pieces(ip, openai_server):
    ip.lollms.update_interval = 0.05
    start = time.monotonic()
    cap = cell(ip, f"-b openai --host {openai_server.url} -m count-2000", "go")
    elapsed = time.monotonic() - start
    assert final(cap).data["text/markdown"] == " tok" * 2000
    assert len(cap.outputs) <= elapsed / 0.05 + 2
    assert len(cap.outputs) < 100  # versus 2,000 pieces


def test_a_slow_answer_is_shown_while_it_streams(ip, openai_server):
    openai_server.slow_pieces, openai_server.slow_delay = 30, 0.02  # about 0.6 s
    ip.lollms.update_interval = 0.1
    cap = cell(ip, f"-b openai --host {openai_server.url} -m slow", "go")
    live = [o for o in cap.outputs[:-1]]
    assert 3 <= len(live) <= 0.6 / 0.1 + 4
    lengths = [len(o.data["text/plain"]) for o in live]
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]


# -- variables in prompts ------------------------------------------------------


def test_interpolation_leaves_code_json_and_latex_alone(ip, openai_server):
    ip.user_ns.update(topic="sorting", data={"k": [10, 20]}, x=3, items=["first"])
    prompt = (
        "Explain {topic} with {items[0]} and {data['k'][1]}\n"
        "def f(d): return {k: v for k, v in d.items()}\n"
        'config = {"a": {"b": 1}}\n'
        "LaTeX: $\\frac{x}{2} + \\mathbf{x} + y^{x}$ where x = {x}\n"
        "Escaped: {{topic}}; unknown: {nothing_here} {x.nope}"
    )
    cell(ip, f"-b openai --host {openai_server.url}", prompt)
    sent = last_user_message(openai_server)
    assert sent.startswith("Explain sorting with first and 20\n")
    assert "def f(d): return {k: v for k, v in d.items()}" in sent
    assert 'config = {"a": {"b": 1}}' in sent
    assert "$\\frac{x}{2} + \\mathbf{x} + y^{x}$ where x = 3" in sent  # LaTeX arguments left
    assert "Escaped: {topic}; unknown: {nothing_here} {x.nope}" in sent


def test_a_method_reference_is_refused_and_nothing_is_sent(ip, openai_server):
    ip.user_ns["topic"] = "sorting"
    with pytest.raises(UsageError) as info:
        cell(ip, f"-b openai --host {openai_server.url}", "Explain {topic.upper}")
    assert str(info.value) == (
        "%lollms: {topic.upper} names a function or method, whose text is not its result; "
        "compute it first (x = topic.upper(...)) and write {x}, or use {{topic.upper}} for literal braces"
    )
    assert not openai_server.requests_to("/v1/chat/completions")


def test_a_file_name_with_an_underscore_is_filled(ip, openai_server):
    ip.user_ns.update(date="2024-05-01", i=2)
    cell(ip, f"-b openai --host {openai_server.url}", "Read data_{date}.csv, row a_{i}")
    assert last_user_message(openai_server) == "Read data_2024-05-01.csv, row a_{i}"


def test_a_large_value_is_cut_with_a_note(ip, openai_server):
    ip.lollms.fill_limit = 100
    ip.user_ns["table"] = "row\n" * 1000
    cap = cell(ip, f"-b openai --host {openai_server.url}", "Summarize {table}")
    sent = last_user_message(openai_server)
    assert sent == "Summarize " + "row\n" * 25 + "\n[... 3,900 more characters not sent]"
    note = final(cap).metadata["lollms_magics"]["notes"]
    assert note == ["{table} was cut to 100 of its 4,000 characters (raise the limit with "
                    "%config LollmsMagics.fill_limit, or send a smaller part)"]


def test_raw_sends_braces_as_written(ip, openai_server):
    ip.user_ns["topic"] = "sorting"
    cell(ip, f"-b openai --host {openai_server.url} --raw", "{topic} {{topic}}")
    assert last_user_message(openai_server) == "{topic} {{topic}}"


# -- the conversation ----------------------------------------------------------


def test_cells_form_a_conversation_and_a_rerun_replaces_its_exchange(ip, openai_server):
    line = f"-b openai --host {openai_server.url}"
    cell(ip, line, "first")
    cell(ip, line, "second")
    sent = openai_server.last_request.json["messages"]
    assert [m["content"] for m in sent] == ["first", "Echo: first", "second"]
    cell(ip, line, "first")  # the first cell, run again
    assert [m["content"] for m in openai_server.last_request.json["messages"]] == ["first"]
    assert [e.prompt for e in ip.lollms.session.conversation.exchanges] == ["first", "second"]
    cap = cell(ip, "history")
    assert "[1] you: first" in cap.stdout and "[2] you: second" in cap.stdout
    assert "[3]" not in cap.stdout


def test_a_cell_id_identifies_the_cell_even_when_its_text_changes(ip, openai_server, monkeypatch):
    line = f"-b openai --host {openai_server.url}"
    monkeypatch.setattr(ip, "parent_header", {"metadata": {"cellId": "cell-a"}}, raising=False)
    cell(ip, line, "draft question")
    cell(ip, line, "better question")
    assert [e.prompt for e in ip.lollms.session.conversation.exchanges] == ["better question"]


def test_new_starts_fresh_and_reset_clears(ip, openai_server):
    line = f"-b openai --host {openai_server.url}"
    cell(ip, line, "one")
    cell(ip, line + " --new", "two")
    assert len(openai_server.last_request.json["messages"]) == 1
    assert len(ip.lollms.session.conversation) == 1
    assert "cleared" in cell(ip, "reset").stdout
    assert len(ip.lollms.session.conversation) == 0


def test_history_is_trimmed_to_the_context(ip, openai_server):
    ip.lollms.context_size = 200
    line = f"-b openai --host {openai_server.url} -n 50"
    for n in range(6):
        cell(ip, line, f"question {n} " + "x" * 160)
    sent = openai_server.last_request.json["messages"]
    assert sent[-1]["content"].startswith("question 5")
    assert len(sent) < 11  # older exchanges were left out
    assert sum(len(m["content"]) for m in sent) // 4 <= 150


def test_a_binding_with_a_smaller_window_trims_more(ip, openai_server, monkeypatch):
    from lollms_magics.bindings.openai import OpenAIBinding

    line = f"-b openai --host {openai_server.url} -n 50"
    for n in range(6):
        cell(ip, line, f"question {n} " + "x" * 160)
    assert len(openai_server.last_request.json["messages"]) == 11  # 4096 tokens: all fit
    monkeypatch.setattr(OpenAIBinding, "context_size", property(lambda self: 200))
    cell(ip, line, "question 6 " + "x" * 160)
    sent = openai_server.last_request.json["messages"]
    assert len(sent) < 11
    assert sum(len(m["content"]) for m in sent) // 4 <= 150


# -- user mistakes fail before any request ---------------------------------------


@pytest.mark.parametrize("line,body,message", [
    ("--bogus 1", "hi", "unrecognized arguments"),
    ("-t hot", "hi", "invalid float value"),
    ("-t 9", "hi", "temperature must be at most 5"),
    ("-b nosuch", "hi", "no binding named 'nosuch'"),
    ("-i missing_var", "hi", "no variable or file"),
    ("-o", "hi", "expected one argument"),
    ("-o 2bad", "hi", "-o needs a variable name"),
    ("", "   ", "nothing to ask"),
    ("extra words", "hi", "the prompt goes in the cell"),
])
def test_usage_errors(ip, openai_server, line, body, message):
    if "-b" not in line:
        line = f"-b openai --host {openai_server.url} {line}"
    with pytest.raises(UsageError, match=message) as info:
        ip.run_cell_magic("lollms", line, body)
    assert "\n" not in str(info.value)
    assert openai_server.requests == []


# -- interrupts and failures keep the text received ------------------------------


def test_interrupt_keeps_the_partial_answer(ip, openai_server):
    openai_server.slow_pieces, openai_server.slow_delay = 100, 0.02  # 2 s if not interrupted
    timer = threading.Timer(0.4, _thread.interrupt_main)
    timer.start()
    with capture_output() as cap, pytest.raises(KeyboardInterrupt):
        ip.run_cell_magic("lollms", f"-b openai --host {openai_server.url} -m slow -o part", "go")
    timer.cancel()
    partial = ip.user_ns["part"]
    assert 0 < len(partial) < len(" tok" * 100)
    assert final(cap).data["text/markdown"] == (
        partial + "\n\n**⚠ incomplete** — interrupted: the answer was stopped before its end"
    )
    assert final(cap).data["text/plain"] == partial
    metadata = final(cap).metadata["lollms_magics"]
    assert metadata["interrupted"] is True and metadata["incomplete"] is True
    assert metadata["finish_reason"] == "cancelled"
    assert "interrupted" in cap.stderr
    assert len(ip.lollms.session.conversation) == 0
    assert openai_server.wait_for_disconnect()  # the stream was closed at once


def test_midstream_failure_fails_the_cell_and_keeps_the_partial_answer(ip, openai_server):
    error, cap = failing_cell(
        ip, f"-b openai --host {openai_server.url} -m fail-midstream -o part", "abcdefghij"
    )
    partial = ip.user_ns["part"]
    assert partial and "Echo: abcdefghij".startswith(partial) and partial != "Echo: abcdefghij"
    message = f"openai at {openai_server.url}/v1: the server reported an error: boom"
    assert final(cap).data["text/markdown"] == (
        f"{partial}\n\n**⚠ incomplete** — the answer stopped: {message}"
    )
    assert final(cap).metadata["lollms_magics"]["error"] == message
    assert type(error).__name__ == "CellFailure"
    assert cap.stdout.strip().splitlines() == [f"\x1b[0;31mlollms: {message}\x1b[0m"]
    assert "Traceback" not in cap.stderr + cap.stdout


def test_debug_shows_the_traceback(ip, openai_server):
    openai_server.fail_next.extend([(500, {})] * 3)  # the first try and both retries
    error, cap = failing_cell(ip, f"-b openai --host {openai_server.url} --debug", "hi")
    assert type(error).__name__ == "ServerError" and "500" in str(error)
    assert "Traceback" in cap.stdout and "http.py" in cap.stdout  # the whole traceback


def test_unreachable_server_fails_the_cell_in_one_line(ip):
    _, cap = failing_cell(ip, "-b ollama --host http://127.0.0.1:9", "hi")
    lines = cap.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("\x1b[0;31mlollms: cannot reach ollama at http://127.0.0.1:9")
    assert "start it with `ollama serve`" in lines[0]
    assert cap.outputs == []


# -- images ---------------------------------------------------------------------


def test_images_from_a_variable_and_a_path(ip, openai_server, tmp_path):
    path = tmp_path / "dot.png"
    path.write_bytes(tiny_png())
    ip.user_ns["pic"] = tiny_png(4, 4)
    cap = cell(ip, f"-b openai --host {openai_server.url} -m vision-model -i pic -i {path}",
               "What is this?")
    parts = last_user_message(openai_server)
    kinds = [p["type"] for p in parts]
    assert kinds == ["text", "image_url", "image_url"]
    assert final(cap).metadata["lollms_magics"]["images"] == 2


# -- commands, configuration and the default binding ----------------------------------


def test_commands(ip, openai_server):
    assert "openai" in cell(ip, "bindings").stdout
    assert "using openai" in cell(ip, f"use openai:test-model --host {openai_server.url}").stdout
    status = cell(ip, "status").stdout
    assert "openai (set with %lollms use)" in status and "answers, 2 model(s)" in status
    assert "test-model" in status
    assert "vision-model" in cell(ip, "models").stdout
    assert "%lollms use BINDING[:MODEL]" in cell(ip, "help").stdout
    assert cell(ip, "").stdout == cell(ip, "help").stdout
    cap = cell(ip, "help me name a function")  # not a command: a prompt
    assert final(cap).data["text/markdown"] == "Echo: help me name a function"
    with pytest.raises(UsageError, match="usage: %lollms use"):
        ip.run_line_magic("lollms", "use")
    with pytest.raises(UsageError, match="no binding named"):
        ip.run_line_magic("lollms", "use nosuch")


def test_config_and_environment_choose_the_default(ip, openai_server, monkeypatch):
    ip.run_line_magic("config", 'LollmsMagics.default_binding = "openai"')
    ip.run_line_magic("config", f'LollmsMagics.default_host = "{openai_server.url}"')
    assert final(cell(ip, "", "hi")).metadata["lollms_magics"]["binding"] == "openai"
    assert "configuration LollmsMagics.default_binding" in cell(ip, "status").stdout
    monkeypatch.setenv("LOLLMS_MAGICS_BINDING", "openai")
    monkeypatch.setenv("LOLLMS_MAGICS_HOST", openai_server.url)
    fresh = LollmsMagics(shell=ip)
    ip.register_magics(fresh)
    try:
        assert "environment variable LOLLMS_MAGICS_BINDING" in cell(ip, "status").stdout
    finally:
        ip.configurables.remove(fresh)
        ip.register_magics(ip.lollms)


def test_automatic_choice_is_made_once(ip, openai_server, monkeypatch):
    from lollms_magics.core import auto
    calls = []

    def choose(timeout=0.5):
        calls.append(timeout)
        return auto.AutoChoice("openai", openai_server.url, "test-model", "an OpenAI server answered")

    monkeypatch.setattr(auto, "choose_binding", choose)
    cell(ip, "", "one")
    cell(ip, "", "two")
    assert len(calls) == 1
    assert "chosen automatically: an OpenAI server answered" in cell(ip, "status").stdout


def test_no_backend_is_one_line(ip, monkeypatch):
    from lollms_magics.core import auto
    from lollms_magics.errors import NoBackendError

    def choose(timeout=0.5):
        raise NoBackendError("no model found; start Ollama or LoLLMs, or use %lollms use")

    monkeypatch.setattr(auto, "choose_binding", choose)
    _, cap = failing_cell(ip, "", "hi")
    assert cap.stdout == (
        "\x1b[0;31mlollms: no model found; start Ollama or LoLLMs, or use %lollms use\x1b[0m\n"
    )
    assert "binding  none: no model found" in cell(ip, "status").stdout


def test_bindings_are_cached_per_server(ip, openai_server):
    line = f"-b openai --host {openai_server.url}"
    cell(ip, line, "a")
    cell(ip, line, "b")
    assert len(ip.lollms.session._bindings) == 1
    cell(ip, line + " -m vision-model", "c")
    assert len(ip.lollms.session._bindings) == 2


# -- load cost ------------------------------------------------------------------------


def test_load_ext_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'lollms_magics')\n"
        "assert 'lollms' in ip.magics_manager.magics['cell']\n"
        "heavy = ('httpx', 'PIL', 'ipywidgets', 'docling', 'llama_cpp', 'lollms_magics.bindings')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=60, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_bad_values_fail_before_the_automatic_choice(ip, monkeypatch):
    from lollms_magics.core import auto

    def choose(timeout=0.5):
        raise AssertionError("the automatic choice ran before the options were checked")

    monkeypatch.setattr(auto, "choose_binding", choose)
    with pytest.raises(UsageError, match="top_p must be at most 1"):
        ip.run_cell_magic("lollms", "--top-p 2", "hi")
    with pytest.raises(UsageError, match="-i nope"):
        ip.run_cell_magic("lollms", "-i nope", "hi")


def test_unload_removes_the_magics_and_load_brings_them_back():
    shell = InteractiveShell.instance()
    if "lollms_magics" not in shell.extension_manager.loaded:
        shell.run_line_magic("load_ext", "lollms_magics")
    shell.run_line_magic("unload_ext", "lollms_magics")
    try:
        assert "lollms" not in shell.magics_manager.magics["line"]
        assert "lollms" not in shell.magics_manager.magics["cell"]
        assert not any(isinstance(c, LollmsMagics) for c in shell.configurables)
    finally:
        shell.run_line_magic("load_ext", "lollms_magics")
    assert "lollms" in shell.magics_manager.magics["cell"]
