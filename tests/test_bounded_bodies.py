"""Whole bodies are read within MAX_BODY_BYTES: a server that never stops sending fails in one line."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import httpx
import pytest

from lollms_magics import get_binding
from lollms_magics.errors import ProtocolError, ResponseTooLargeError
from lollms_magics.transport import bounded

MiB = 1024 * 1024
KEY = "sk-bounded-0123456789abcdef"


def endless(taken: list[int], opening: bytes = b'{"data": [') -> Iterator[bytes]:
    """A JSON body that never ends, in 64 KiB reads, counting the reads taken."""
    yield opening
    block = b'{"id": "m"},' * 5000
    while True:
        taken[0] += 1
        yield block


def test_an_endless_model_list_stops_at_the_cap_with_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounded, "MAX_BODY_BYTES", 8 * MiB)
    taken = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless(taken), headers={"content-type": "application/json"})

    binding = get_binding("openai", host="http://models.test/v1?key=" + KEY, api_key=KEY,
                          transport=httpx.MockTransport(handler))
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLargeError) as info:
            binding.list_models()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "\n" not in message and "more than 8 MB" in message and "check the server" in message
    assert KEY not in message
    assert isinstance(info.value, ProtocolError)
    assert taken[0] * 60_000 < 10 * MiB  # it stopped reading at the cap (each read is 60,000 bytes)
    assert peak < 40 * MiB  # the body was not kept past the cap


def test_a_whole_answer_announced_too_long_is_refused_before_it_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bounded, "MAX_BODY_BYTES", 1000)
    taken = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            taken[0] += 1
            yield b"{" + b" " * 2000 + b"}"

        return httpx.Response(200, content=body(), headers={"content-length": "2002"})

    binding = get_binding("ollama", host="http://ollama.test", model="m",
                          transport=httpx.MockTransport(handler))
    response = binding.generate("Hi", stream=False)
    with pytest.raises(ResponseTooLargeError, match="more than 1000 bytes"):
        response.text  # noqa: B018 - reading the answer runs it
    assert taken[0] == 0  # refused on its announced length: no byte read


def test_a_body_under_the_cap_reads_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounded, "MAX_BODY_BYTES", 4096)
    body = b'{"object": "list", "data": [' + b",".join(
        b'{"id": "model-%03d", "object": "model"}' % i for i in range(40)) + b"]}"
    assert 1000 < len(body) < 4096

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([body[:500], body[500:]]))

    binding = get_binding("openai", host="http://models.test/v1", transport=httpx.MockTransport(handler))
    names = [m.name for m in binding.list_models()]
    assert names[0] == "model-000" and names[-1] == "model-039" and len(names) == 40


def test_a_streamed_answer_that_never_ends_fails_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    # Events that each end, without end: the per-event bound never fires, the body cap does.
    monkeypatch.setattr(bounded, "MAX_BODY_BYTES", 2 * MiB)

    def events() -> Iterator[bytes]:
        while True:
            yield b'{"model": "m", "response": "la ", "done": false}\n' * 200

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=events(), headers={"content-type": "application/x-ndjson"})

    binding = get_binding("ollama", host="http://ollama.test", model="m",
                          transport=httpx.MockTransport(handler))
    response = binding.generate("Sing")
    with pytest.raises(ResponseTooLargeError):
        for _ in response:
            pass
    assert response.text.startswith("la la la")  # what came before is kept
