"""API keys never reach a saved notebook: not in outputs, metadata, errors, status or history."""

from __future__ import annotations

import getpass
import re
import secrets

import nbformat
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from nbformat.v4 import new_code_cell, new_notebook, new_output

from tests.test_magics import ip  # noqa: F401  (the fixture)

ENV_KEY = "sk-env-" + secrets.token_hex(16)
TYPED_KEY = "sk-typed-" + secrets.token_hex(16)


def _outputs(cap):
    """The notebook outputs a frontend would keep from a capture (updates applied)."""
    outputs, by_id = [], {}
    for name in ("stdout", "stderr"):
        text = getattr(cap, name)
        if text:
            outputs.append(new_output("stream", name=name, text=text))
    for out in cap.outputs:
        display_id = out.transient.get("display_id")
        if out.update and display_id in by_id:
            by_id[display_id].update(data=out.data, metadata=out.metadata)
            continue
        node = new_output("display_data", data=out.data, metadata=out.metadata)
        outputs.append(node)
        if display_id:
            by_id[display_id] = node
    return outputs


def test_keys_stay_out_of_the_saved_notebook(ip, openai_server, monkeypatch, tmp_path):  # noqa: F811
    openai_server.api_key = ENV_KEY
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": TYPED_KEY)
    host = f"--host {openai_server.url}"
    cells = [  # (magic line, cell body or None for the line form)
        (f"-b openai {host} -o answer", "Say hello"),
        (f"-b openai {host} -f json a one-liner", None),
        (f"-b openai {host} -m fail-midstream broken", None),
        ("key openai", None),  # a wrong key, typed into the hidden prompt
        (f"-b openai {host}", "Rejected?"),
        (f"-b openai {host} --debug", "Rejected again?"),
        (f"use openai {host}", None),
        ("status", None),
        ("models", None),
        ("history", None),
    ]
    nb = new_notebook(cells=[new_code_cell("%load_ext lollms_magics")])
    for line, body in cells:
        source = f"%lollms {line}" if body is None else f"%%lollms {line}\n{body}"
        with capture_output() as captured:
            ip.run_cell(source)  # as a notebook runs it: failures are shown, not raised
        nb.cells.append(new_code_cell(source, outputs=_outputs(captured)))

    # The keys were really used: the first from the environment, then the typed one.
    auths = [r.headers.get("authorization") for r in openai_server.requests]
    assert f"Bearer {ENV_KEY}" in auths and f"Bearer {TYPED_KEY}" in auths
    text_of = {c.source.splitlines()[0]: str(c.outputs) for c in nb.cells}
    assert "Echo: Say hello" in text_of[f"%%lollms -b openai {host} -o answer"]
    assert "Incorrect API key" in text_of[f"%%lollms -b openai {host}"]
    assert "401" in text_of["%lollms status"] or "API key" in text_of["%lollms status"]

    path = tmp_path / "keys.ipynb"
    nbformat.validate(nb)
    nbformat.write(nb, path)
    saved = path.read_text()
    assert "Echo: Say hello" in saved and "lollms_magics" in saved
    assert ENV_KEY not in saved
    assert TYPED_KEY not in saved
    assert ENV_KEY not in repr(ip.lollms.session.conversation.exchanges)
    assert TYPED_KEY not in repr(ip.lollms.session.conversation.exchanges)


def test_a_real_kernel_saves_answers_and_no_key(openai_server, monkeypatch, tmp_path):
    import nbclient
    openai_server.api_key = ENV_KEY
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)  # the kernel inherits it
    nb = new_notebook(cells=[
        new_code_cell("%load_ext lollms_magics"),
        new_code_cell(f"%%lollms -b openai --host {openai_server.url} -m count-300\nCount"),
        new_code_cell(f"%%lollms -b openai --host {openai_server.url} -o a\nWhat is {{1+1}}?"),
        new_code_cell("print(a)"),
        new_code_cell("%lollms status"),
    ])
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    path = tmp_path / "run.ipynb"
    nbformat.write(nb, path)
    saved = path.read_text()
    assert ENV_KEY not in saved
    count_cell = nb.cells[1].outputs
    assert len(count_cell) == 1  # the live view was replaced by the final answer
    answer, footer = count_cell[0].data["text/markdown"].split("\n\n")
    assert answer == " tok" * 300
    assert re.fullmatch(r"<sub>count-300 · 300 tokens · \d+\.\d tok/s · \d+\.\d s</sub>", footer)
    assert count_cell[0].data["text/plain"] == " tok" * 300
    assert count_cell[0].metadata["lollms_magics"]["binding"] == "openai"
    assert nb.cells[3].outputs[0].text == "Echo: What is {1+1}?\n"


def test_a_failing_cell_stops_a_real_run_all_with_one_line(openai_server, monkeypatch):
    import nbclient
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    nb = new_notebook(cells=[
        new_code_cell("%load_ext lollms_magics"),
        new_code_cell(f"%%lollms -b openai --host {openai_server.url} -m fail-midstream -o part\nabcdefghij"),
        new_code_cell("print('this cell must not run')"),
    ])
    with pytest.raises(CellExecutionError):
        nbclient.NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    outputs = nb.cells[1].outputs
    error = [o for o in outputs if o.output_type == "error"]
    assert len(error) == 1 and error[0].ename == "CellFailure"
    assert error[0].traceback == [
        f"\x1b[0;31mlollms: openai at {openai_server.url}/v1: the server reported an error: boom\x1b[0m"
    ]
    shown = [o for o in outputs if o.output_type in ("display_data", "execute_result")]
    assert "**⚠ incomplete**" in shown[-1].data["text/markdown"]  # the partial text stays, marked
    assert nb.cells[2].outputs == []  # Run All stopped at the failure
    assert ENV_KEY not in str(nb)


def test_a_prompt_holding_a_key_is_refused(ip, openai_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    with pytest.raises(UsageError, match="holds an API key") as info:
        ip.run_cell_magic("lollms", f"-b openai --host {openai_server.url}", f"my key is {ENV_KEY}")
    assert ENV_KEY not in str(info.value)
    assert openai_server.requests == []


def test_a_key_reached_through_a_variable_is_refused(ip, openai_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    ip.user_ns["creds"] = {"key": ENV_KEY}
    with pytest.raises(UsageError, match="holds an API key") as info:
        ip.run_cell_magic("lollms", f"-b openai --host {openai_server.url}", "use {creds['key']}")
    assert ENV_KEY not in str(info.value)
    assert openai_server.requests == []
