"""The httpx transport under every binding's client while a tape is on.

:class:`TapeTransport` wraps the transport a client would have used (built
here, ``httpx.HTTPTransport(verify=, trust_env=)``, when the client was given
none). For each request it asks which tape is active: none sends it on
unchanged; a :class:`~.cassette.Recorder` sends it and keeps the answer as it
is read, chunk by chunk with the time each arrived; a
:class:`~.cassette.Player` answers from the file, at the recorded pace.

A refused connection or a timeout is recorded too, so the automatic choice of
backend replays the same way on a machine with different servers. An answer
the reader stopped (the binding says so with
:func:`~lollms_magics.transport.tape.reader_stopped`) is kept with ``"cut":
true`` and the time of the stop; replayed, its body raises
:class:`~lollms_magics.transport.tape.RecordedStop` at that time if more is
read, and the binding ends the answer as stopped. A replayed
request the file lacks raises :class:`~lollms_magics.errors.NotRecordedError`
when it carries a prompt; other requests (probes, model lists) raise
``httpx.TransportError``, which reads as "nothing answers there".
"""

from __future__ import annotations

import base64
import codecs
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from ..transport.client import http_transport  # httpx's, with connections a cancel can cut
from ..transport.tape import STOPPED_NOTE, RecordedStop
from .cassette import Player, Recorder, Tape
from .scrub import Scrubber, header_secrets, prompt_of, request_key

__all__ = ["NotRecordedRequest", "TapeTransport"]


class NotRecordedRequest(httpx.TransportError):
    """A replayed request without a prompt that the file does not hold (read as: nothing answers)."""


class TapeTransport(httpx.BaseTransport):
    """Records or replays the requests of one client, following the active tape."""

    def __init__(
        self,
        transport: httpx.BaseTransport | None,
        *,
        verify: bool,
        trust_env: bool,
        active: Callable[[], Tape | None],
    ) -> None:
        self._inner = transport
        self._verify = verify
        self._trust_env = trust_env
        self._active = active
        self._making = threading.Lock()

    def _live(self) -> httpx.BaseTransport:
        if self._inner is None:  # built on first need: a pure replay opens no connection
            # Once, whatever the threads (a mapped cell's first requests come together):
            # each transport made beside it would be a connection pool of its own, never closed.
            with self._making:
                if self._inner is None:
                    self._inner = http_transport(verify=self._verify, trust_env=self._trust_env)
        return self._inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        tape = self._active()
        if tape is None:
            return self._live().handle_request(request)
        body = request.read()
        secrets = header_secrets(request.headers.multi_items())
        scrubber = tape.scrubber(secrets)
        key = request_key(
            request.method, request.url.path, request.url.params.multi_items(), body,
            request.headers.get("content-type", ""), scrubber,
        )
        if isinstance(tape, Player):
            entry = tape.take(key)
            if entry is not None:
                return _replayed(entry, request, tape)
            if tape.fallback:
                return self._live().handle_request(request)
            if prompt_of(key):
                raise tape.miss(key)
            raise NotRecordedRequest(
                f"{request.method} {request.url.path} is not in the replay file {tape.path}", request=request
            )
        assert isinstance(tape, Recorder)
        known = tape.take(key)  # recording only what the file lacks: this one it has
        if known is not None:
            return _replayed(known, request, tape)
        return self._record(tape, key, request, scrubber)

    def _record(
        self, tape: Recorder, key: dict[str, Any], request: httpx.Request, scrubber: Scrubber
    ) -> httpx.Response:
        # A compressed body could not be scrubbed or read back: ask for plain bytes.
        request.headers["Accept-Encoding"] = "identity"
        start = time.perf_counter()
        try:
            live = self._live().handle_request(request)
        except httpx.TransportError as exc:
            tape.add({"key": key, "error": type(exc).__name__, "message": scrubber.text(str(exc))})
            raise
        entry: dict[str, Any] = {
            "key": key,
            "status": live.status_code,
            "type": live.headers.get("content-type", ""),
            "ttfb": _seconds(time.perf_counter() - start),
        }
        stream = _RecordingStream(
            live.stream,
            start,
            lambda chunks, cut: _commit(tape, entry, chunks, scrubber, cut),
            by_line=_LINE_FRAMED.search(entry["type"]) is not None,
        )
        extensions = {**live.extensions, STOPPED_NOTE: stream.stopped}
        return httpx.Response(live.status_code, headers=live.headers, stream=stream, extensions=extensions)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()


def _seconds(value: float) -> float:
    return round(value, 3)


# Bodies whose events end at line ends: server-sent events and JSON lines.
_LINE_FRAMED = re.compile(r"event-stream|ndjson|jsonl", re.IGNORECASE)


class _RecordingStream(httpx.SyncByteStream):
    """Passes the live body through, noting each chunk and when it came; commits on close.

    With ``by_line``, each network read is passed on one line at a time, and
    only the lines the reader took are kept. A reader stopped in the middle
    of a read (a Stop between two events that came together) then leaves the
    events it never saw out of the file, and the replay gives the same text.
    """

    def __init__(
        self,
        inner: Any,
        start: float,
        commit: Callable[[list[tuple[float, bytes]], float | None], None],
        *,
        by_line: bool = False,
    ) -> None:
        self._inner = inner
        self._start = start
        self._commit = commit
        self._by_line = by_line
        self._chunks: list[tuple[float, bytearray]] = []  # per read: when it came, what was taken of it
        self._stopped_at: float | None = None
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            taken = bytearray()
            self._chunks.append((time.perf_counter() - self._start, taken))
            if not self._by_line:
                taken += chunk
                yield chunk
                continue
            for line in chunk.splitlines(keepends=True):
                taken += line
                yield line

    def stopped(self) -> None:
        """The reader stopped this answer (:func:`~lollms_magics.transport.tape.reader_stopped`)."""
        if self._stopped_at is None:
            self._stopped_at = time.perf_counter() - self._start

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            if not self._done:
                self._done = True
                chunks = [(at, bytes(taken)) for at, taken in self._chunks if taken]
                self._commit(chunks, self._stopped_at)


def _commit(
    tape: Recorder,
    entry: dict[str, Any],
    chunks: list[tuple[float, bytes]],
    scrubber: Scrubber,
    stopped_at: float | None,
) -> None:
    """Store the body read: as text chunks when it is UTF-8, else as base64; and where it was stopped."""
    body = b"".join(data for _, data in chunks)
    end = _seconds(chunks[-1][0]) if chunks else entry["ttfb"]
    texts = None if entry["type"].startswith("image/") else _text_chunks(chunks)
    if texts is None:
        entry.update(b64=base64.b64encode(body).decode("ascii"), end=end)
    else:
        entry["chunks"] = _scrubbed(texts, entry["type"], scrubber, end)
    if stopped_at is not None:
        entry.update(cut=True, end=max(end, _seconds(stopped_at)))
    tape.add(entry)


def _text_chunks(chunks: list[tuple[float, bytes]]) -> list[list[Any]] | None:
    """``[seconds, text]`` per chunk (a character cut between two chunks goes to the second), or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    texts: list[list[Any]] = []
    try:
        for seconds, data in chunks:
            text = decoder.decode(data)
            if text:
                texts.append([_seconds(seconds), text])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    return texts


def _scrubbed(texts: list[list[Any]], content_type: str, scrubber: Scrubber, end: float) -> list[list[Any]]:
    whole = "".join(text for _, text in texts)
    if "json" in content_type:
        try:
            data = json.loads(whole)
        except ValueError:
            pass  # a stream of JSON lines: scrubbed as text below
        else:  # one JSON document: client_id and secret fields go too
            return [[end, json.dumps(scrubber.data(data), ensure_ascii=False)]]
    pieces = [[seconds, scrubber.text(text)] for seconds, text in texts]
    if "".join(text for _, text in pieces) != scrubber.text(whole):
        return [[end, scrubber.text(whole)]]  # a secret cut across two chunks: keep one chunk
    return pieces


class _ReplayStream(httpx.SyncByteStream):
    """The recorded chunks, each released when its time comes; close() stops it at once.

    ``cut_at``: the reader stopped the recorded answer then, so reading past
    the last chunk raises :class:`RecordedStop` at that time instead of ending.
    """

    def __init__(self, chunks: list[tuple[float, bytes]], start: float, cut_at: float | None = None) -> None:
        self._chunks = chunks
        self._start = start
        self._cut_at = cut_at
        self._closed = threading.Event()

    def _wait_until(self, at: float) -> bool:
        """Wait until ``at`` seconds after the start; False when closed meanwhile."""
        wait = self._start + at - time.perf_counter()
        if wait > 0 and self._closed.wait(wait):
            return False
        return not self._closed.is_set()

    def __iter__(self) -> Iterator[bytes]:
        for at, data in self._chunks:
            if not self._wait_until(at):
                return
            yield data
        if self._cut_at is not None and self._wait_until(self._cut_at):
            raise RecordedStop()

    def close(self) -> None:
        self._closed.set()


def _replayed(entry: dict[str, Any], request: httpx.Request, tape: Tape) -> httpx.Response:
    start = time.perf_counter()
    error = entry.get("error")
    if error:
        time.sleep(tape.delay(entry.get("ttfb", 0.0)))
        cls = getattr(httpx, str(error), None)
        if not (isinstance(cls, type) and issubclass(cls, httpx.TransportError)):
            cls = httpx.ConnectError
        raise cls(str(entry.get("message", error)), request=request)
    ttfb = tape.delay(entry.get("ttfb", 0.0))
    if ttfb > 0:
        time.sleep(ttfb)
    if "b64" in entry:
        chunks = [(tape.delay(entry.get("end", 0.0)), base64.b64decode(entry["b64"]))]
    else:
        chunks = [(tape.delay(at), str(text).encode("utf-8")) for at, text in entry.get("chunks", [])]
    cut_at = tape.delay(entry.get("end", 0.0)) if entry.get("cut") else None
    headers = {"content-type": entry["type"]} if entry.get("type") else {}
    stream = _ReplayStream(chunks, start, cut_at)
    return httpx.Response(int(entry["status"]), headers=headers, stream=stream, request=request)
