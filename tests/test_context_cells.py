"""``%%lollms --context N`` sends the cells just run before the prompt (issue 18).

Cells are run as a notebook kernel runs them (``store_history=True``), so the
context is read from the shell's real history and output cache.
"""

from __future__ import annotations

from IPython.utils.capture import capture_output

from lollms_magics.core.context import Cell
from lollms_magics.core.session import Session
from tests.test_magics import cell, final, ip  # noqa: F401  (ip is the fixture)

KEY = "sk-test-context-0123456789SECRET"


def run(ip, source):  # noqa: F811
    """Run ``source`` as a notebook cell; its result and what it showed."""
    with capture_output() as cap:
        result = ip.run_cell(source, store_history=True)
    return result, cap


def sent(server):
    return server.requests_to("/v1/chat/completions")[-1].json["messages"]


def test_the_last_cells_code_and_values_go_before_the_prompt(ip, openai_server):  # noqa: F811
    run(ip, "x = 41")
    run(ip, "x + 1")
    run(ip, "print('shown, not kept')")
    result, cap = run(ip, f"%%lollms -b openai --host {openai_server.url} --context 2\nWhat is x?")
    assert result.success, cap.stderr
    prompt = sent(openai_server)[-1]["content"]
    first, second = ip.execution_count - 3, ip.execution_count - 2  # the two cells before the question
    assert f"In [{first}]:\n```python\nx + 1\n```\nOut[{first}]: 42" in prompt
    assert f"In [{second}]:\n```python\nprint('shown, not kept')\n```" in prompt
    assert "x = 41" not in prompt and "shown, not kept\n" not in prompt.split("```")[-1]
    assert prompt.index("x + 1") < prompt.index("print(") < prompt.index("What is x?")
    assert prompt.endswith("\n\n---\n\nWhat is x?")
    # the conversation keeps the question as asked; the next question's context skips the %%lollms cell
    assert ip.lollms.session.history()[-1].prompt == "What is x?"
    run(ip, f"%%lollms -b openai --host {openai_server.url} --context 1\nAnd now?")
    messages = sent(openai_server)
    assert messages[0]["content"] == "What is x?"  # history, without the context
    last = messages[-1]["content"]
    assert "print('shown, not kept')" in last and "What is x?" not in last


def test_nothing_is_sent_by_default_and_the_setting_changes_it(ip, openai_server):  # noqa: F811
    run(ip, "y = 'a value'")
    run(ip, f"%%lollms -b openai --host {openai_server.url}\nQuestion one")
    assert sent(openai_server)[-1]["content"] == "Question one"
    run(ip, "%config LollmsMagics.context_cells = 1")
    run(ip, "y.upper()")
    run(ip, f"%%lollms -b openai --host {openai_server.url} --new\nQuestion two")
    [message] = sent(openai_server)
    assert "y.upper()" in message["content"] and "'A VALUE'" in message["content"]
    assert "%config" not in message["content"]  # the newest cell only
    run(ip, f"%%lollms -b openai --host {openai_server.url} --new --context 0\nQuestion three")
    assert sent(openai_server) == [{"role": "user", "content": "Question three"}]


def test_a_long_context_is_cut_to_fit_with_a_note(ip, openai_server):  # noqa: F811
    ip.lollms.context_size = 1_000  # 750 tokens for the prompt: 375 for the context
    run(ip, "old = 'o' * 10")
    run(ip, "'m' * 900")  # a value of about 300 tokens
    run(ip, "new = 1")
    result, cap = run(ip, f"%%lollms -b openai --host {openai_server.url} --context 3\nWhich cells?")
    assert result.success
    prompt = sent(openai_server)[-1]["content"]
    assert "new = 1" in prompt and "old = " not in prompt and prompt.endswith("Which cells?")
    notes = final(cap).metadata["lollms_magics"]["notes"]
    assert any("context cut: 1 older cell(s) of 3 left out" in note for note in notes)
    assert len(prompt) < 3 * 750


def test_a_key_in_a_cell_is_refused_before_anything_is_sent(ip, openai_server):  # noqa: F811
    ip.lollms.session.set_key("openai", KEY)
    run(ip, f"token = {KEY!r}")
    run(ip, "z = 2")
    result, cap = run(ip, f"%%lollms -b openai --host {openai_server.url} --context 2\nHelp")
    assert not result.success
    number = ip.execution_count - 3
    assert f"the context (In [{number}]) holds an API key" in str(result.error_in_exec)
    assert KEY not in str(result.error_in_exec) + cap.stdout + cap.stderr
    assert openai_server.requests_to("/v1/chat/completions") == []


def test_session_ask_takes_the_kernels_cells_or_given_ones(ip, openai_server):  # noqa: F811
    session = Session("openai", host=openai_server.url)
    ip.user_ns["s"] = session
    run(ip, "values = [3, 1, 2]")
    run(ip, "sorted(values)")
    result, _ = run(ip, "answer = s.ask('Sorted?', context=1).text")
    assert result.success
    assert "sorted(values)\n```\nOut[" in sent(openai_server)[-1]["content"]
    assert "]: [1, 2, 3]" in sent(openai_server)[-1]["content"]
    assert session.ask("Given?", context=[Cell(7, "a = 1", "None"), ("b = 2", None)], history=False).text
    given = sent(openai_server)[-1]["content"]
    assert "In [7]:\n```python\na = 1\n```\nOut[7]: None" in given
    assert "In [2]:\n```python\nb = 2\n```" in given
    session.close()


def test_context_with_each_is_a_usage_error(ip, openai_server):  # noqa: F811
    ip.user_ns["items"] = ["a", "b"]
    line = f"-b openai --host {openai_server.url} --each items --context 2"
    result, _ = run(ip, f"%%lollms {line}\nSay {{item}}")
    assert "--context goes with one prompt, not with --each" in str(result.error_in_exec)
    assert openai_server.requests_to("/v1/chat/completions") == []
