"""Framing by the specifications: SSE and NDJSON split on their own line ends, not on Unicode's.

``str.splitlines()`` (and so ``httpx.Response.iter_lines()``) also ends a line
at U+2028, U+2029 and U+0085, which JSON carries raw inside strings. The unit
tests feed :mod:`lollms_magics.transport.framing` every stream cut at every
byte; the loopback tests send such characters through every streaming binding
(the servers echo the prompt, and split writes inside multibyte characters).
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from lollms_magics import get_binding
from lollms_magics.errors import StreamBrokenError
from lollms_magics.transport import framing
from lollms_magics.transport.framing import EventTooLarge, SSEErrorField, ndjson_lines, sse_data
from tests.servers import LOLLMS_KEY

pytestmark = pytest.mark.timeout(60)

# Line separators Unicode knows and the protocols do not, emoji, CJK, accents.
TRICKY = "a\u2028b\u2029c\u0085d \U0001f642\U0001f44d\U0001f3fd 漢字かな é\x1c\x1d\x1e\x0b\x0c end"


def cuts(data: bytes) -> Iterator[list[bytes]]:
    """``data`` cut once at every byte, then into single bytes."""
    for i in range(len(data) + 1):
        yield [data[:i], data[i:]]
    yield [data[i : i + 1] for i in range(len(data))]


def all_ways(frame: Callable[[list[bytes]], list[bytes]], data: bytes) -> list[bytes]:
    """What ``frame`` gives for ``data``, which must be the same however it is cut."""
    results = {tuple(frame(chunks)) for chunks in cuts(data)}
    assert len(results) == 1, f"the split changed the result: {results}"
    return list(results.pop())


def sse(chunks: list[bytes]) -> list[bytes]:
    return list(sse_data(chunks))


def ndjson(chunks: list[bytes]) -> list[bytes]:
    return list(ndjson_lines(chunks))


# -- server-sent events ---------------------------------------------------------------


@pytest.mark.parametrize("nl", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_sse_every_line_end_of_the_spec(nl: bytes) -> None:
    data = b"data: one" + nl + nl + b"data: two" + nl + nl + b"data: [DONE]" + nl + nl
    assert all_ways(sse, data) == [b"one", b"two", b"[DONE]"]


def test_sse_crlf_cut_between_cr_and_lf_is_one_line_end() -> None:
    # Taken as two line ends, the "\r" | "\n" split would end the event after "a".
    data = b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"
    assert sse([b"data: a\r", b"\ndata: b\r\n\r\ndata: c\r\n\r\n"]) == [b"a\nb", b"c"]
    assert all_ways(sse, data) == [b"a\nb", b"c"]


@pytest.mark.parametrize("data", [
    b"data: a\r\n\ndata: b\n\n",  # CRLF, then LF as the blank line
    b"data: a\r\n\rdata: b\r\r",
    b"data: a\n\r\ndata: b\r\n\n",
], ids=["CRLF-LF", "CRLF-CR", "LF-CRLF"])
def test_sse_mixed_line_ends_cut_anywhere(data: bytes) -> None:
    # A "\r" ending one chunk and the "\n" of the next are one line end; the
    # "\n" after those is a line end of its own, in whatever chunk it comes.
    assert all_ways(sse, data) == [b"a", b"b"]
    for i in range(1, len(data)):
        for j in range(i + 1, len(data)):
            assert sse([data[:i], b"", data[i:j], data[j:]]) == [b"a", b"b"], (i, j)


def test_sse_lone_cr_then_blank_line_made_of_crlf() -> None:
    assert all_ways(sse, b"data: x\r\r\ndata: y\n\r") == [b"x", b"y"]


def test_sse_multi_line_data_is_joined_with_newlines() -> None:
    data = b'data: {"a":\ndata:1,\ndata:  "b": 2}\n\n'
    assert all_ways(sse, data) == [b'{"a":\n1,\n "b": 2}']  # one space after the colon goes


def test_sse_comments_and_other_fields_are_skipped() -> None:
    data = (b": keep-alive\n\nevent: message\nid: 7\nretry: 100\ndata: x\n\n"
            b":ping\r\n\r\nevent: only\n\n")
    assert all_ways(sse, data) == [b"x"]


def test_sse_error_line_is_raised_with_its_payload() -> None:
    data = b'data: a\n\nerror: {"code":500,"message":"llama died"}\n\ndata: [DONE]\n\n'
    for chunks in cuts(data):
        got: list[bytes] = []
        with pytest.raises(SSEErrorField) as info:
            for payload in sse_data(chunks):
                got.append(payload)
        assert got == [b"a"]
        assert info.value.payload == b'{"code":500,"message":"llama died"}'
        assert str(info.value) == '{"code":500,"message":"llama died"}'


def test_sse_final_event_without_blank_line_is_dropped() -> None:
    # The spec discards an event the stream ends in the middle of.
    assert all_ways(sse, b"data: a\n\ndata: half") == [b"a"]
    assert all_ways(sse, b"data: a\n\ndata: half\n") == [b"a"]


@pytest.mark.parametrize("tail", [b"", b"\n", b"\r\n", b"\r"], ids=["bare", "LF", "CRLF", "CR"])
def test_sse_done_without_blank_line_still_ends(tail: bytes) -> None:
    assert all_ways(sse, b"data: a\n\ndata: [DONE]" + tail) == [b"a", b"[DONE]"]


def test_sse_unicode_line_separators_are_content() -> None:
    payload = ('{"t":"' + TRICKY + '"}').encode("utf-8")
    data = b"data: " + payload + b"\r\n\r\n" + b"data: " + payload + b"\n\n"
    assert all_ways(sse, data) == [payload, payload]
    assert all_ways(sse, data)[0].decode("utf-8") == '{"t":"' + TRICKY + '"}'


# -- newline-delimited JSON -----------------------------------------------------------------


def test_ndjson_splits_at_lf_only() -> None:
    one = ('{"t":"' + TRICKY + '"}').encode("utf-8")
    data = one + b"\n" + b'{"u":"x\\ny"}\r\n' + one
    assert all_ways(ndjson, data) == [one, b'{"u":"x\\ny"}\r', one]


def test_ndjson_skips_blank_lines_and_gives_a_last_line_without_lf() -> None:
    data = b'\n{"a":1}\n\n  \r\n{"b":2}'
    assert all_ways(ndjson, data) == [b'{"a":1}', b'{"b":2}']


def test_ndjson_lone_cr_is_not_a_line_end() -> None:
    assert all_ways(ndjson, b'{"a":1}\r{"b":2}\n') == [b'{"a":1}\r{"b":2}']


# -- through every streaming binding, over real HTTP --------------------------------------------


def _make(name: str, request: pytest.FixtureRequest, **kw: Any) -> tuple[Any, Any]:
    if name == "openai":
        srv = request.getfixturevalue("openai_server")
        return srv, get_binding("openai", host=srv.url, model="test-model", **kw)
    if name == "openai_crlf":
        srv = request.getfixturevalue("openai_server")
        srv.crlf = True
        srv.keepalive_comments = True
        return srv, get_binding("openai", host=srv.url, model="test-model", **kw)
    if name == "lollms_v1":
        srv = request.getfixturevalue("lollms_server")
        return srv, get_binding("lollms", host=srv.url, model="ollama/test-model", api_key=LOLLMS_KEY, **kw)
    if name == "lollms_webui":
        srv = request.getfixturevalue("lollms_webui_server")
        return srv, get_binding("lollms", host=srv.url, model="test-model", **kw)
    srv = request.getfixturevalue("ollama_server")
    api = "generate" if name == "ollama_generate" else "chat"
    return srv, get_binding("ollama", host=srv.url, model="test-model", api=api, **kw)


STREAMING = ["openai", "openai_crlf", "lollms_v1", "lollms_webui", "ollama", "ollama_generate"]


@pytest.mark.parametrize("name", STREAMING)
def test_unicode_line_separators_arrive_intact(name: str, request: pytest.FixtureRequest) -> None:
    server, binding = _make(name, request)
    prompt = f"{TRICKY}\nline two\r\nthree"
    response = binding.generate(prompt)
    pieces = list(response)
    # The servers echo the prompt in 2-4 character pieces, cutting writes
    # after the first byte of a multibyte character.
    assert "".join(pieces) == "Echo: " + prompt
    assert len(pieces) > 10
    assert response.done and response.error is None
    if name != "lollms_webui":  # the only protocol without a finish reason
        assert response.finish_reason == "stop"
    assert server.requests[-1].json is not None


@pytest.mark.parametrize("name", STREAMING)
def test_unicode_in_a_whole_answer(name: str, request: pytest.FixtureRequest) -> None:
    _, binding = _make(name, request)
    response = binding.generate(TRICKY, stream=False)
    assert response.text == "Echo: " + TRICKY
    assert response.done


# -- bounded, and linear: a server that never ends its line ------------------------------------

MiB = 1024 * 1024
FRAMES = {"sse": sse_data, "ndjson": ndjson_lines}
OPENING = {"sse": b"data: ", "ndjson": b""}


def endless(opening: bytes, total: int, size: int = 64 * 1024) -> tuple[Iterator[bytes], list[int]]:
    """``total`` bytes of one line that never ends, in reads of ``size``; and the count of reads taken."""
    taken = [0]

    def reads() -> Iterator[bytes]:
        yield opening
        block = b"x" * size
        for _ in range(total // size):
            taken[0] += 1
            yield block

    return reads(), taken


@pytest.mark.parametrize("kind", ["sse", "ndjson"])
def test_a_line_that_never_ends_stops_at_the_limit_with_bounded_memory(kind: str) -> None:
    # 48 MiB offered with no line end: the reader must give up after 16 MiB,
    # having held about that much, not the whole body (nor buffer it forever).
    reads, taken = endless(OPENING[kind], 48 * MiB)
    tracemalloc.start()
    try:
        with pytest.raises(EventTooLarge) as info:
            for _ in FRAMES[kind](reads):
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    limit = framing.MAX_EVENT_BYTES
    assert limit == 16 * MiB
    assert str(info.value) == "the server sent an event larger than 16 MB without ending it"
    assert taken[0] <= 16 * MiB // (64 * 1024) + 1  # it stopped reading at the limit
    assert peak < 40 * MiB


@pytest.mark.parametrize("kind", ["sse", "ndjson"])
def test_an_event_just_under_the_limit_is_whole(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(framing, "MAX_EVENT_BYTES", 1000)
    body = OPENING[kind] + b"y" * (1000 - len(OPENING[kind]))
    end = b"\n\n" if kind == "sse" else b"\n"
    got = list(FRAMES[kind]([body[i : i + 7] for i in range(0, len(body), 7)] + [end]))
    assert got == [b"y" * (1000 - len(OPENING[kind]))]
    with pytest.raises(EventTooLarge, match="larger than 1000 bytes"):
        list(FRAMES[kind]([body, b"z", end]))


@pytest.mark.parametrize(("kind", "pattern"), [
    ("sse", b"x"),  # one endless data line (after "data: ")
    ("sse", b"\ndata: x"),  # an event of endless lines, never a blank one
    ("sse", b"\rdata: x"),  # the same with CR line ends
    ("ndjson", b"x"),
])
def test_one_byte_reads_without_an_end_take_linear_time(kind: str, pattern: bytes) -> None:
    """1 MiB in one-byte reads: each read is searched alone, the pending event is not searched again.

    Re-joining and searching the whole pending event at each read (as before)
    copies about 500 GB here: minutes. The time is compared with a plain loop
    over the same reads, measured next to it.
    """
    size = 1 * MiB
    data = OPENING[kind] + (pattern * (size // len(pattern) + 1))[:size]
    reads = [data[i : i + 1] for i in range(len(data))]
    end = [b"\n\n"] if kind == "sse" else [b"\n"]

    def plain(chunks: list[bytes]) -> Iterator[bytes]:
        total = 0
        for chunk in chunks:
            if chunk:
                total += len(chunk)
        yield str(total).encode()

    # CPU time of this process: other processes on a loaded machine barely change it.
    start = time.process_time()
    list(plain(reads + end))
    floor = time.process_time() - start
    start = time.process_time()
    events = list(FRAMES[kind](reads + end))
    spent = time.process_time() - start
    assert len(events) == 1 and events[0].count(b"x") == data.count(b"x")
    # Measured: 5-20 times the plain loop; quadratic work is about a thousand times.
    assert spent < 100 * floor + 1.0, f"{spent:.2f} s against {floor:.3f} s for a plain loop"


def _endless_body(opening: bytes) -> Iterator[bytes]:
    yield opening
    block = b"x" * 65536
    for _ in range(48 * 16):  # 48 MiB: three times the limit
        yield block


@pytest.mark.parametrize(("name", "kind", "content_type"), [
    ("openai", "sse", "text/event-stream"),
    ("ollama", "ndjson", "application/x-ndjson"),
])
def test_a_binding_reports_an_endless_event_in_one_line(name: str, kind: str, content_type: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        opening = (b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\ndata: '
                   if kind == "sse" else
                   b'{"model":"m","message":{"role":"assistant","content":"Hi"},"done":false}\n')
        return httpx.Response(200, headers={"content-type": content_type},
                              content=_endless_body(opening))

    binding = get_binding(name, host="http://endless.test:8000", model="m",
                          transport=httpx.MockTransport(handler))
    response = binding.generate("x")
    with pytest.raises(StreamBrokenError) as info:
        for _ in response:
            pass
    message = str(info.value)
    host = "http://endless.test:8000" + ("/v1" if name == "openai" else "")
    assert message == f"{name} at {host}: the server sent an event larger than 16 MB without ending it"
    assert "\n" not in message
    assert response.text == "Hi" and info.value.partial_text == "Hi"
