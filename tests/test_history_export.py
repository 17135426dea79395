"""``%lollms history --export FILE`` writes the conversation as Markdown, JSON or a notebook (issue 18)."""

from __future__ import annotations

import base64
import json

import nbformat
import pytest
from IPython.core.error import UsageError

from tests.servers import tiny_png
from tests.test_magics import cell, ip  # noqa: F401  (ip is the fixture)


@pytest.fixture
def talked(ip, openai_server, ollama_server):  # noqa: F811
    """Two exchanges with two backends, the first with a picture and braces in it."""
    ip.user_ns["pic"] = tiny_png(4, 4)
    cell(ip, f"-b openai --host {openai_server.url} -i pic --raw", "What is {this}?")
    cell(ip, f"-b ollama --host {ollama_server.url} -m test-model", "And in French?")
    return ip


def test_a_notebook_that_nbformat_validates_with_one_cell_per_exchange(talked, tmp_path):
    path = tmp_path / "talk.ipynb"
    out = cell(talked, f"history --export {path}").stdout
    assert out == f"lollms: 2 exchange(s) written to {path} (notebook)\n"
    notebook = nbformat.read(str(path), as_version=4)
    nbformat.validate(notebook)
    sources = [c.source for c in notebook.cells]
    assert sources == [
        "%%lollms -b openai:test-model\nWhat is {this}?", "%%lollms -b ollama:test-model\nAnd in French?",
    ]
    answers = [c.outputs[0].data["text/markdown"] for c in notebook.cells]
    assert answers == ["Echo: What is {this}?", "Echo: And in French?"]
    assert notebook.cells[0].outputs[0].metadata["lollms_magics"]["images"] == 1
    assert base64.b64encode(tiny_png(4, 4)).decode()[:40] not in path.read_text()  # the picture is not


def test_json_and_markdown(talked, tmp_path):
    cell(talked, f"history --export {tmp_path / 'talk.json'}")
    data = json.loads((tmp_path / "talk.json").read_text())
    assert data["exchanges"] == [
        {"prompt": "What is {this}?", "answer": "Echo: What is {this}?", "backend": "openai:test-model",
         "images": 1},
        {"prompt": "And in French?", "answer": "Echo: And in French?", "backend": "ollama:test-model",
         "images": 0},
    ]
    cell(talked, f"history --export {tmp_path / 'talk.md'}")
    text = (tmp_path / "talk.md").read_text()
    first = text.index("## 1. You\n\nWhat is {this}?")
    assert first < text.index("### openai:test-model\n\nEcho: What is {this}?")
    assert text.index("Echo: What is {this}?") < text.index("## 2. You\n\nAnd in French?")
    assert "(1 image(s) sent, not written here)" in text


def test_a_key_in_an_answer_is_masked_in_the_file(ip, openai_server, tmp_path):  # noqa: F811
    key = "sk-test-export-0123456789SECRET"
    cell(ip, f"-b openai --host {openai_server.url}", "Say hello")
    ip.lollms.session.set_key("openai", key)  # a key typed after: an answer may not repeat it
    ip.lollms.session.conversation.exchanges[-1].answer = f"here it is: {key}"
    for name in ("t.md", "t.json", "t.ipynb"):
        cell(ip, f"history --export {tmp_path / name}")
        assert key not in (tmp_path / name).read_text() and "***" in (tmp_path / name).read_text()


def test_an_unknown_extension_is_a_usage_error(ip, tmp_path):  # noqa: F811
    with pytest.raises(UsageError, match=r"use \.md, \.json or \.ipynb"):
        ip.run_line_magic("lollms", f"history --export {tmp_path / 'talk.txt'}")
    assert not (tmp_path / "talk.txt").exists()
    with pytest.raises(UsageError, match="usage: %lollms models"):
        ip.run_line_magic("lollms", f"models --export {tmp_path / 'x.md'}")
