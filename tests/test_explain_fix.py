"""``%lollms explain`` and ``%lollms fix`` on a real failing cell in an InteractiveShell (issue 18)."""

from __future__ import annotations

import sys

from IPython.utils.capture import capture_output

from lollms_magics.ipython import explain
from tests.test_magics import final, ip  # noqa: F401  (ip is the fixture)

FAILING = '''def scale(values, factor):
    hidden = "PRIVATE" + "-LOCAL-VALUE"
    return [v * factor for v in values] + len(hidden)

scale([1, 2], 3)'''


def run(ip, source):  # noqa: F811
    with capture_output() as cap:
        result = ip.run_cell(source, store_history=True)
    return result, cap


def sent(server):
    return server.requests_to("/v1/chat/completions")[-1].json["messages"][-1]["content"]


def test_explain_sends_the_code_the_exception_and_the_frames_never_a_local_value(ip, openai_server):  # noqa: F811
    failed, _ = run(ip, FAILING)
    assert isinstance(failed.error_in_exec, TypeError)
    number = ip.execution_count - 1
    run(ip, "%lollms --nonsense")  # a %lollms cell failing is not the user's error to explain
    result, cap = run(ip, f"%lollms -b openai --host {openai_server.url} explain")
    assert result.success, cap.stderr
    prompt = sent(openai_server)
    assert prompt.startswith(f"In [{number}] failed. Explain briefly")
    assert f"```python\n{FAILING}\n```" in prompt
    assert f"In [{number}], line 3, in scale\n    return [v * factor for v in values] + len(hidden)" in prompt
    assert 'TypeError: can only concatenate list (not "int") to list' in prompt
    assert "PRIVATE-LOCAL-VALUE" not in prompt and "[3, 6]" not in prompt  # values of locals
    assert "--nonsense" not in prompt
    assert final(cap).data["text/markdown"].startswith(f"Echo: In [{number}] failed.")  # streamed in


def test_fix_offers_the_corrected_cell_as_the_next_cell(ip, openai_server, monkeypatch):  # noqa: F811
    offered = []
    monkeypatch.setattr(ip, "set_next_input", lambda text, replace=False: offered.append(text))
    run(ip, "total = sum(['1', 2])")
    result, cap = run(ip, f"%lollms -b openai --host {openai_server.url} fix")
    assert result.success, cap.stderr
    prompt = sent(openai_server)
    assert "Give the corrected cell, whole, in one Python code block" in prompt
    assert "TypeError: unsupported operand type(s) for +: 'int' and 'str'" in prompt
    # the echo server answers with the prompt, whose first python block is the cell: it is what is offered
    assert offered == ["total = sum(['1', 2])"]


def test_with_no_error_yet_one_line_says_so(ip, openai_server, monkeypatch):  # noqa: F811
    explain._failures.pop(ip, None)  # the shell is shared by the tests: forget their errors
    monkeypatch.delattr(sys, "last_exc", raising=False)
    monkeypatch.delattr(sys, "last_value", raising=False)
    for command in ("explain", "fix"):
        result, cap = run(ip, f"%lollms -b openai --host {openai_server.url} {command}")
        assert result.success
        assert cap.stdout.count("\n") == 1 and cap.stdout.startswith("lollms: no cell has failed yet")
    assert openai_server.requests_to("/v1/chat/completions") == []


def test_an_error_from_before_the_watch_is_found_through_sys_last_exc(ip, openai_server, monkeypatch):  # noqa: F811
    failed, _ = run(ip, "1 / 0")
    number = ip.execution_count - 1
    explain._failures.pop(ip, None)  # as if the error came before %load_ext
    monkeypatch.setattr(sys, "last_exc", failed.error_in_exec, raising=False)
    result, cap = run(ip, f"%lollms -b openai --host {openai_server.url} explain")
    assert result.success, cap.stderr
    prompt = sent(openai_server)
    assert f"In [{number}] failed." in prompt and "```python\n1 / 0\n```" in prompt
    assert "ZeroDivisionError: division by zero" in prompt


def test_a_key_in_the_failing_cell_is_refused_before_anything_is_sent(ip, openai_server):  # noqa: F811
    key = "sk-test-explain-0123456789SECRET"
    ip.lollms.session.set_key("openai", key)
    run(ip, f"connect({key!r})")  # NameError: the key is in the code
    number = ip.execution_count - 1
    result, cap = run(ip, f"%lollms -b openai --host {openai_server.url} explain")
    assert f"In [{number}] (its code or its error) holds an API key" in str(result.error_in_exec)
    assert key not in str(result.error_in_exec) + cap.stdout + cap.stderr
    assert openai_server.requests_to("/v1/chat/completions") == []
