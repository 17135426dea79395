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

An event is held at most :data:`MAX_EVENT_BYTES` long while it arrives: a
server that never ends its line raises :class:`EventTooLarge` instead of
filling the memory. Each network read is searched once, with only the byte
before it looked at again for a boundary split between two reads, so the
work grows with the size of the body, not with its square.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["MAX_EVENT_BYTES", "EventTooLarge", "SSEErrorField", "ndjson_lines", "sse_data"]

# The longest event (an NDJSON line, an SSE event) kept while waiting for its end.
# A whole answer in one non-streamed chunk is far smaller; a picture sent as one
# base64 event stays well below it too.
MAX_EVENT_BYTES = 16 * 1024 * 1024


class SSEErrorField(Exception):
    """An ``error:`` line in an event stream: llama.cpp's way to report a failure mid-stream.

    The SSE rules would ignore this unknown field, after which ``[DONE]``
    ends the stream as if nothing happened; the bindings report it instead.
    """

    def __init__(self, payload: bytes) -> None:
        super().__init__(payload.decode("utf-8", "replace"))
        self.payload = payload


class EventTooLarge(Exception):
    """The stream went on for more than ``limit`` bytes without ending its event or line."""

    def __init__(self, limit: int) -> None:
        size = f"{limit / 2**20:g} MB" if limit >= 2**20 else f"{limit} bytes"
        super().__init__(f"the server sent an event larger than {size} without ending it")
        self.limit = limit


def ndjson_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The non-empty lines of a newline-delimited JSON body, as bytes.

    A last line without its ``\\n`` is given too: the parser decides whether
    it is a whole object or the half of one that a broken connection left.
    Raises :class:`EventTooLarge` for a line longer than :data:`MAX_EVENT_BYTES`.
    """
    limit = MAX_EVENT_BYTES  # read per stream, so that a test may lower it
    # The line begun in earlier reads: the bytes of one read as they came, or,
    # for a line over several reads, a bytearray grown in place (not copied each time).
    pending: bytes | bytearray = b""
    for chunk in chunks:
        lines = chunk.split(b"\n")
        if len(lines) == 1:  # no line end in this read: the line goes on
            if not pending:
                pending = chunk
                continue
            if isinstance(pending, bytes):
                pending = bytearray(pending)
            pending += chunk
            if len(pending) > limit:
                raise EventTooLarge(limit)
            continue
        if pending:
            lines[0] = bytes(pending) + lines[0]
        pending = lines.pop()
        for line in lines:
            if line and not line.isspace():
                yield line
    if pending and not pending.isspace():
        yield bytes(pending)


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
    Raises :class:`EventTooLarge` for an event longer than :data:`MAX_EVENT_BYTES`.
    """
    limit = MAX_EVENT_BYTES
    pending = bytearray()  # the event begun in earlier reads, line ends already made "\n"
    after_cr = False  # the last chunk ended with "\r": a "\n" opening the next is the same line end
    for chunk in chunks:
        if not chunk:
            continue
        # Line ends made "\n" here, inline: this loop runs once per network read.
        if b"\r" in chunk or after_cr:
            if after_cr and chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    after_cr = False
                    continue
            after_cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        # Only the new bytes are searched, and the byte before them for a blank
        # line split across two reads: the pending event was searched already.
        if b"\n\n" not in chunk and not (pending and chunk[0] == 0x0A and pending[-1] == 0x0A):
            pending += chunk  # the event goes on
            if len(pending) > limit:
                raise EventTooLarge(limit)
            continue
        if pending:
            pending += chunk
            chunk = bytes(pending)
            pending.clear()
        blocks = chunk.split(b"\n\n")
        tail = blocks.pop()
        if tail:  # an event begun, not ended
            pending += tail
            if len(pending) > limit:
                raise EventTooLarge(limit)
        for block in blocks:
            # The usual event is one "data: ..." line: read it without splitting lines.
            if block[:5] == b"data:" and b"\n" not in block:
                value = block[5:]
                yield value[1:] if value[:1] == b" " else value
                continue
            data = _event_data(block)
            if data is not None:
                yield data
    if bytes(pending).strip(b"\n") in (b"data: [DONE]", b"data:[DONE]"):
        yield b"[DONE]"
