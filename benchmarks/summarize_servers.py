"""The two servers of the summarization benchmark, both recording every request they serve.

* :class:`RecordingProxy` stands in front of a real OpenAI-compatible server
  (llama-cpp-python's): it forwards each request as it is, streams the answer
  back as it comes, and notes when the request arrived and when its last byte
  left. The clients talk to the proxy, so what they send and how long the
  server took are seen the same way for every client.
* :class:`FixedDelayServer` is an OpenAI-compatible loopback server that takes
  a fixed time per chat request, then streams an *extractive* answer: the
  sentences of the last user message that carry a name or a number (what a
  good summarizer should keep), or the first sentence of its longest
  paragraph. It shows the calls a client makes and its own overhead apart
  from any model's speed. It also answers ``/extras/tokenize`` (and
  ``/count``) like llama-cpp-python does, with the same tokenizer, so a client
  that counts tokens on the server behaves alike on both.

Both use only the standard library and speak HTTP/1.1 with keep-alive:
answers with a body of known size carry ``Content-Length``, streams are sent
with chunked transfer encoding.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Tokenize = Callable[[str], list[int]]


@dataclass
class Record:
    """One request as the server saw it, with its answer's text."""

    path: str
    start: float  # time.monotonic() when the request line was read
    end: float = 0.0  # when the last byte of the answer was written
    status: int = 0
    body: Any = None  # the request's JSON body (None when not JSON)
    answer: str = ""  # the assistant text of a chat completion
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    client_left: bool = False  # the client closed the connection before the end of the stream
    server_broke_off: bool = False  # the server ended the stream without finishing its body


@dataclass
class Recorder:
    """Thread-safe list of :class:`Record`."""

    records: list[Record] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0

    def begin(self) -> None:
        with self.lock:
            self.in_flight += 1

    def add(self, record: Record) -> None:
        with self.lock:
            self.records.append(record)
            self.in_flight -= 1

    def between(self, start: float, end: float, settle: float = 1.0) -> list[Record]:
        """Requests that arrived between ``start`` and ``end``, once their records are written.

        A client may read the last byte of an answer before the server's
        thread has noted its end, so wait up to ``settle`` seconds for the
        requests still in hand.
        """
        deadline = time.monotonic() + settle
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.lock:
            return [r for r in self.records if start <= r.start <= end]


def parse_sse(raw: bytes) -> tuple[str, str | None, dict[str, Any] | None]:
    """Assistant text, last finish reason and usage of an OpenAI SSE body (or a JSON body)."""
    text: list[str] = []
    finish: str | None = None
    usage: dict[str, Any] | None = None
    events = []
    stripped = raw.lstrip()
    if stripped.startswith(b"{"):
        events = [json.loads(stripped)]
    else:
        for line in raw.decode("utf-8", "replace").splitlines():
            if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                try:
                    events.append(json.loads(line[5:]))
                except json.JSONDecodeError:
                    continue
    for event in events:
        for choice in event.get("choices") or []:
            part = choice.get("delta") or choice.get("message") or {}
            text.append(part.get("content") or "")
            finish = choice.get("finish_reason") or finish
        usage = event.get("usage") or usage
    return "".join(text), finish, usage


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Base

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the records are the log."""

    def _read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        self.server.handle(self, b"")

    def do_POST(self) -> None:
        self.server.handle(self, self._read_body())

    def send_whole(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_stream(self, status: int, content_type: str, pieces: Iterator[bytes], sent: bytearray) -> bool:
        """Send ``pieces`` as a chunked body, keeping a copy in ``sent``; False if the client left."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for piece in pieces:
                if piece:
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.flush()
                    sent += piece
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return False
        return True


class _Base(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.recorder = Recorder()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client closing its connection is part of what is measured."""

    def handle(self, handler: _Handler, body: bytes) -> None:
        self.recorder.begin()
        record = Record(handler.path, time.monotonic())
        try:
            record.body = json.loads(body) if body else None
        except json.JSONDecodeError:
            record.body = None
        try:
            self.answer(handler, body, record)
        finally:
            record.end = time.monotonic()
            self.recorder.add(record)

    def answer(self, handler: _Handler, body: bytes, record: Record) -> None:
        raise NotImplementedError


class RecordingProxy(_Base):
    """Forwards everything to ``upstream`` (``http://host:port``) and records it."""

    def __init__(self, upstream: str, port: int = 0) -> None:
        super().__init__(port)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        # One upstream connection per client connection's thread, kept alive like the client's.
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(*self.upstream, timeout=3600)
            self._local.conn = conn
        return conn

    def answer(self, handler: _Handler, body: bytes, record: Record) -> None:
        headers = {k: v for k, v in handler.headers.items() if k.lower() in ("content-type", "authorization")}
        conn = self._connection()
        try:
            conn.request(handler.command, handler.path, body=body or None, headers=headers)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException):
            conn.close()
            self._local.conn = None
            raise
        record.status = response.status
        content_type = response.getheader("Content-Type", "application/octet-stream")
        if response.getheader("Content-Length") is not None:
            raw = response.read()
            handler.send_whole(response.status, content_type, raw)
        else:
            sent = bytearray()
            try:
                done = handler.send_stream(response.status, content_type, _read_pieces(response), sent)
            except (OSError, http.client.HTTPException):
                # The server broke the stream off (llama-cpp-python does when it sees a disconnect or
                # another request waiting): keep what was forwarded, end the client's stream too.
                record.server_broke_off = True
                handler.close_connection = True  # the client sees the body cut off, as it would directly
                done = False
            if not done:
                # The client hung up mid-stream: hang up on the server too, as a direct client would.
                record.client_left = not record.server_broke_off
                conn.close()
                self._local.conn = None
            raw = bytes(sent)
        if "chat/completions" in handler.path:
            record.answer, record.finish_reason, record.usage = parse_sse(raw)


def _read_pieces(response: http.client.HTTPResponse) -> Iterator[bytes]:
    while True:
        piece = response.read1(65536)
        if not piece:
            return
        yield piece


# Sentences worth keeping: a capitalized word after the first one, or a number.
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]")
_KEEP = re.compile(r"\S\s+[A-Z][a-z]{3,}|\b\d{3,}\b")


def extractive_answer(prompt: str, limit_words: int) -> str:
    """The answer of :class:`FixedDelayServer` to ``prompt`` (see the module docstring)."""
    kept: list[str] = []
    for sentence in _SENTENCE.findall(prompt):
        sentence = sentence.strip()
        if _KEEP.search(sentence) and sentence not in kept:
            kept.append(sentence)
    if not kept:
        paragraphs = sorted(prompt.split("\n\n"), key=len)
        first = _SENTENCE.findall(paragraphs[-1]) if paragraphs else []
        kept = [first[0].strip()] if first else ["Nothing to report."]
    words = " ".join(f"- {s}\n" for s in kept).split(" ")
    return " ".join(words[:limit_words]).strip()


class FixedDelayServer(_Base):
    """OpenAI-compatible chat server that waits ``delay`` seconds per request, then streams at once."""

    def __init__(self, tokenize: Tokenize, delay: float = 0.5, port: int = 0) -> None:
        super().__init__(port)
        self.tokenize = tokenize
        self.delay = delay

    def answer(self, handler: _Handler, body: bytes, record: Record) -> None:
        path = handler.path.rstrip("/")
        data = record.body if isinstance(record.body, dict) else {}
        if path in ("/v1/models", "/models"):
            reply = {
                "object": "list",
                "data": [{"id": "fixed-delay", "object": "model", "owned_by": "bench"}],
            }
            self._json(handler, record, 200, reply)
        elif path == "/extras/tokenize":
            self._json(handler, record, 200, {"tokens": self.tokenize(str(data.get("input", "")))})
        elif path == "/extras/tokenize/count":
            self._json(handler, record, 200, {"count": len(self.tokenize(str(data.get("input", ""))))})
        elif path.endswith("/chat/completions") and handler.command == "POST":
            self._chat(handler, record, data)
        else:
            self._json(handler, record, 404, {"detail": "Not Found"})

    def _json(self, handler: _Handler, record: Record, status: int, obj: Any) -> None:
        record.status = status
        handler.send_whole(status, "application/json", json.dumps(obj).encode())

    def _chat(self, handler: _Handler, record: Record, data: dict[str, Any]) -> None:
        messages = data.get("messages") or []
        user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
        if isinstance(user, list):  # content parts
            user = "\n".join(p.get("text", "") for p in user if isinstance(p, dict))
        limit = int(data.get("max_tokens") or data.get("max_completion_tokens") or 512)
        text = extractive_answer(str(user), max(1, int(limit * 0.7)))  # ~1.4 tokens per word
        time.sleep(self.delay)
        record.status, record.answer, record.finish_reason = 200, text, "stop"
        prompt_tokens = sum(len(self.tokenize(str(m.get("content", "")))) for m in messages)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(self.tokenize(text))}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        base = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": str(data.get("model") or "fixed-delay"),
        }
        if not data.get("stream"):
            message = {"role": "assistant", "content": text}
            reply = dict(
                base,
                object="chat.completion",
                usage=usage,
                choices=[{"index": 0, "message": message, "finish_reason": "stop"}],
            )
            self._json(handler, record, 200, reply)
            return
        record.usage = usage
        include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
        sent = bytearray()
        done = handler.send_stream(
            200, "text/event-stream", _sse(base, text, usage if include_usage else None), sent
        )
        record.client_left = not done


def _sse(base: dict[str, Any], text: str, usage: dict[str, Any] | None) -> Iterator[bytes]:
    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj = dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish}])
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    yield event({"role": "assistant", "content": ""})
    for word in re.findall(r"\s*\S+", text):  # one event per word, like a server's token stream
        yield event({"content": word})
    yield event({}, "stop")
    if usage is not None:
        yield b"data: " + json.dumps(dict(base, choices=[], usage=usage)).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"
