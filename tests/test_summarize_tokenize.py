"""The bindings' tokenizers, and summaries that count with them.

LoLLMs servers (loopback, one token per word): ``/lollms_tokenize`` on the
webui, ``/v1/tokenize`` on the new server. OpenAI-compatible servers:
llama.cpp's ``/tokenize`` (``content``) and llama-cpp-python's
``/extras/tokenize`` (``input``), both beside ``/v1``, through
``httpx.MockTransport`` with the bodies their code answers (see
/work/notes/facts.md §4-5); the end-to-end test runs the real one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from lollms_magics import get_binding
from lollms_magics.summaries import summarize
from lollms_magics.summaries.resume import shared_memory
from tests.servers import LOLLMS_KEY, LollmsServer, LollmsWebuiServer
from tests.servers.base import word_count
from tests.test_summarize import make_document, note_reply

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    shared_memory().clear()
    yield


def test_lollms_webui_tokenize(lollms_webui_server: LollmsWebuiServer) -> None:
    binding = get_binding("lollms", host=lollms_webui_server.url, model="test-model", protocol="webui")
    tokens = binding.tokenize("the harbour of Brest")
    assert tokens is not None and len(tokens) == 4
    assert lollms_webui_server.requests_to("/lollms_tokenize")[0].json == {"prompt": "the harbour of Brest"}


def test_new_lollms_server_tokenize(lollms_server: LollmsServer) -> None:
    binding = get_binding(
        "lollms", host=lollms_server.url, model="ollama/test-model", api_key=LOLLMS_KEY, protocol="v1"
    )
    tokens = binding.tokenize("one two three")
    assert tokens is not None and len(tokens) == 3
    request = lollms_server.requests_to("/v1/tokenize")[0]
    assert request.json == {"model": "ollama/test-model", "text": "one two three"}


def test_a_summary_on_lollms_webui_counts_with_its_tokenizer(lollms_webui_server: LollmsWebuiServer) -> None:
    lollms_webui_server.reply = note_reply
    binding = get_binding("lollms", host=lollms_webui_server.url, model="test-model", protocol="webui")
    ctx = 500
    result = summarize(make_document(sections=10), binding, ctx_size=ctx, n_predict=100)
    assert result.complete
    assert lollms_webui_server.requests_to("/lollms_tokenize")  # the chunks were counted by the server
    generations = lollms_webui_server.requests_to("/lollms_generate")
    assert len(generations) == result.calls > 4
    for request in generations:  # the server's own tokenizer: one token per word
        assert word_count(request.json["prompt"]) + request.json["n_predict"] <= ctx


def _llama_transport(seen: list[httpx.Request], tokenize_route: str) -> httpx.MockTransport:
    """A server with only ``tokenize_route`` (llama.cpp's or llama-cpp-python's)."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path != tokenize_route:
            return httpx.Response(404, json={"detail": "Not Found"})
        body = json.loads(request.content)
        text = body["content" if tokenize_route == "/tokenize" else "input"]
        return httpx.Response(200, json={"tokens": [7] * len(text.split())})

    return httpx.MockTransport(handle)


@pytest.mark.parametrize("route", ["/tokenize", "/extras/tokenize"])
def test_openai_compatible_servers_tokenize_beside_v1(route: str) -> None:
    seen: list[httpx.Request] = []
    binding = get_binding("openai", host="http://127.0.0.1:8080/v1", transport=_llama_transport(seen, route))
    assert binding.tokenize("a b c d") == [7, 7, 7, 7]
    assert str(seen[-1].url) == f"http://127.0.0.1:8080{route}"
    first = len(seen)
    assert binding.tokenize("e f") == [7, 7]
    assert len(seen) == first + 1 and seen[-1].url.path == route  # the route found is remembered


def test_a_server_without_a_tokenizer_is_asked_once() -> None:
    seen: list[httpx.Request] = []
    binding = get_binding(
        "openai", host="http://127.0.0.1:8000/v1", transport=_llama_transport(seen, "/none")
    )
    assert binding.tokenize("a b") is None
    assert [r.url.path for r in seen] == ["/tokenize", "/extras/tokenize"]
    assert binding.tokenize("c d") is None
    assert len(seen) == 2


def test_api_openai_com_is_not_asked() -> None:
    seen: list[httpx.Request] = []
    binding = get_binding(
        "openai",
        host="https://api.openai.com/v1",
        api_key="sk-test",
        transport=_llama_transport(seen, "/tokenize"),
    )
    assert binding.tokenize("a b") is None
    assert seen == []
