"""Splitting a streamed body into events, as the specifications say.

``httpx.Response.iter_lines()`` splits on everything ``str.splitlines()``
treats as a line end, U+2028, U+2029 and U+0085 included. JSON carries those
characters raw inside strings (llama.cpp, vLLM and Python servers send them
so), so an answer holding one would be cut in the middle of an event. Here:

* NDJSON lines end at ``\\n`` only (a ``\\r`` before it is JSON whitespace);
* server-sent event lines end at ``\\r\\n``, ``\\n`` or ``\\r``, and an event
  ends at a blank line (the WHATWG HTML "event stream" rules).

Both work on the raw bytes: ``\\n`` and ``\\r`` never occur inside a multibyte
UTF-8 sequence, so nothing is decoded until a whole event is there, and a
character split across two network reads arrives intact.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["SSEErrorField", "ndjson_lines", "sse_data"]


class SSEErrorField(Exception):
    """An ``error:`` line in an event stream: llama.cpp's way to report a failure mid-stream.

    The SSE rules would ignore this unknown field, after which ``[DONE]``
    ends the stream as if nothing happened; the bindings report it instead.
    """

    def __init__(self, payload: bytes) -> None:
        super().__init__(payload.decode("utf-8", "replace"))
        self.payload = payload


def ndjson_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The non-empty lines of a newline-delimited JSON body, as bytes.

    A last line without its ``\\n`` is given too: the parser decides whether
    it is a whole object or the half of one that a broken connection left.
    """
    pending = b""
    for chunk in chunks:
        if pending:
            chunk = pending + chunk
        lines = chunk.split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line and not line.isspace():
                yield line
    if pending and not pending.isspace():
        yield pending


def _event_data(block: bytes) -> bytes | None:
    """The data of one event's lines (None when it has no data field)."""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value[:1] == b" " else value)
        elif line.startswith(b"error:"):
            value = line[6:]
            raise SSEErrorField(value[1:] if value[:1] == b" " else value)
    return b"\n".join(data) if data else None


def sse_data(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The ``data`` of each event of an event stream, as bytes (multi-line data joined by ``\\n``).

    Comments (``: keep-alive``) and the ``event``, ``id`` and ``retry`` fields
    are skipped. An ``error:`` line raises :class:`SSEErrorField`. An event
    the stream ends in the middle of is dropped, as the rules say, except a
    lone ``[DONE]``, which some servers send without the blank line after it.
    """
    pending = b""
    after_cr = False  # the last chunk ended with "\r": a "\n" opening the next is the same line end
    for chunk in chunks:
        if not chunk:
            continue
        # Line ends made "\n" here, inline: this loop runs once per network read.
        if b"\r" in chunk or after_cr:
            if after_cr and chunk[:1] == b"\n":
                chunk = chunk[1:]
            after_cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if pending:
            chunk = pending + chunk
        if b"\n\n" not in chunk:
            pending = chunk
            continue
        blocks = chunk.split(b"\n\n")
        pending = blocks.pop()
        for block in blocks:
            # The usual event is one "data: ..." line: read it without splitting lines.
            if block[:5] == b"data:" and b"\n" not in block:
                value = block[5:]
                yield value[1:] if value[:1] == b" " else value
                continue
            data = _event_data(block)
            if data is not None:
                yield data
    if pending.strip(b"\n") in (b"data: [DONE]", b"data:[DONE]"):
        yield b"[DONE]"
