"""Shared machinery for the loopback protocol servers used in tests.

A :class:`LoopbackServer` is a stdlib ``ThreadingHTTPServer`` bound to an
ephemeral port on 127.0.0.1.  It records every request, consumes planned
failures (``fail_next``), and gives protocol subclasses a :class:`Stream`
object that writes HTTP/1.1 chunked bodies by hand, so tests decide exactly
how bytes are split across writes, whether the body ends properly, is cut
off, or goes silent.

Reply content is deterministic: see :func:`plan_reply` for the magic model
names (``count-N``, ``slow``, ``fail-midstream``, ``truncate`` ...).
A server may have a few generation slots (``slots``), as llama.cpp's
``--parallel`` and Ollama's ``OLLAMA_NUM_PARALLEL`` give it: a generation
that finds them all busy waits, before any header, until one frees, as the
real servers queue it; one whose client hangs up meanwhile is dropped and
recorded in ``disconnects``. ``pause_accepting`` leaves new connections in
the kernel's listen queue, which makes a connect hang once that is full.
The ``think`` models (:data:`REASONING_MODELS`) answer the usual echo after
some reasoning (:data:`REASONING_TEXT`), which each protocol sends in its own
field. A stalled stream watches its socket, so a client that hangs up during
the silence is recorded in ``disconnects`` as one that hangs up during writes.
"""

from __future__ import annotations

import base64
import json
import re
import select
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "FAULT_NAMES",
    "ClientGone",
    "LoopbackServer",
    "Plan",
    "Recorded",
    "Stream",
    "plan_reply",
    "split_pieces",
    "tiny_png",
    "word_count",
]


# ---------------------------------------------------------------- helpers


def split_pieces(text: str, sizes: tuple[int, ...] = (2, 3, 4, 3)) -> list[str]:
    """Cut *text* into small pieces of 2-4 characters (cycling through *sizes*).

    Words, newlines and multibyte characters end up straddling pieces.
    """
    out: list[str] = []
    i = k = 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        out.append(text[i : i + n])
        i += n
        k += 1
    return out


def word_count(text: str) -> int:
    return len(text.split())


def tiny_png(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (200, 40, 90)) -> bytes:
    """A valid RGB PNG built with zlib + struct."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + bytes(rgb) * width
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


IMAGE_MAGICS = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM")


def looks_like_image(data: bytes) -> bool:
    return data.startswith(IMAGE_MAGICS)


def http_date_now() -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())


# ---------------------------------------------------------------- replies

FAULT_NAMES = (
    "fail-midstream",  # k pieces then the protocol's in-band error
    "fail-midstream-llamacpp",  # OpenAI flavour: `error: {...}` SSE line then [DONE]
    "truncate",  # k pieces then the chunked body is aborted
    "truncate-clean",  # k pieces then a well-formed end without terminator
    "truncate-midline",  # k pieces then half an event, then abort
    "stall",  # 2 pieces then silence until stop()/stall_timeout
    "stall-before",  # headers then silence
    "slow",  # slow_pieces pieces, slow_delay seconds apart
)
_COUNT_RE = re.compile(r"^count-(\d+)$")
# Models that reason before answering: "think" in llama.cpp's and DeepSeek's
# field (``reasoning_content``; Ollama: ``thinking``), "think-vllm" in current
# vLLM's and Ollama /v1's (``reasoning``).
REASONING_MODELS = ("think", "think-vllm")
REASONING_TEXT = "The user wants an echo; "  # cut into pieces like an answer


@dataclass
class Plan:
    """What a generation request will produce."""

    model: str
    pieces: list[str]
    finish: str = "stop"  # "stop" | "length"
    fault: str | None = None  # one of FAULT_NAMES or None
    fault_at: int = 0  # pieces sent before the fault fires
    delay: float = 0.0  # seconds between pieces
    fast: bool = False  # one chunk per event, no split/coalesce

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def base_model_name(model: str) -> str:
    """Strip an ``alias/`` prefix and a ``:latest`` tag."""
    name = model.rsplit("/", 1)[-1]
    if name.endswith(":latest"):
        name = name[: -len(":latest")]
    return name


def is_special_model(model: str) -> bool:
    name = base_model_name(model)
    return name in FAULT_NAMES or name in REASONING_MODELS or bool(_COUNT_RE.match(name))


def reasoning_of(model: str) -> list[str]:
    """The reasoning pieces a ``think`` model sends before its answer (else none)."""
    return split_pieces(REASONING_TEXT) if base_model_name(model) in REASONING_MODELS else []


def plan_reply(
    model: str, prompt_text: str, limit: int | None, *, slow_pieces: int = 50, slow_delay: float = 0.02
) -> Plan:
    """Deterministic reply for *model* given the last user text.

    Normal models answer ``"Echo: " + prompt_text`` cut into 2-4 character
    pieces.  ``limit`` (max_tokens / num_predict / n_predict; None or <= 0
    means unlimited) caps the number of pieces and turns the finish reason
    into ``length``.  ``count-N`` streams N pieces ``" tok"`` (fast path),
    ``slow`` streams ``slow_pieces`` pieces ``" tok"``.
    """
    name = base_model_name(model)
    m = _COUNT_RE.match(name)
    if m:
        pieces = [" tok"] * int(m.group(1))
        plan = Plan(model, pieces, fast=True)
    elif name == "slow":
        plan = Plan(model, [" tok"] * slow_pieces, delay=slow_delay)
    else:
        plan = Plan(model, split_pieces("Echo: " + prompt_text))
        if name in FAULT_NAMES:
            plan.fault = name
            plan.fault_at = {"stall": 2, "stall-before": 0}.get(name, 3)
    if limit is not None and limit > 0 and len(plan.pieces) > limit:
        plan.pieces = plan.pieces[:limit]
        plan.finish = "length"
    if plan.fault:
        plan.fault_at = min(plan.fault_at, len(plan.pieces))
    return plan


# ---------------------------------------------------------------- records


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    body: bytes
    query: dict[str, list[str]] = field(default_factory=dict)
    peer: tuple[str, int] | None = None  # the client's address: the same for a reused connection


class ClientGone(Exception):
    """The client closed the connection while we were writing."""


# ---------------------------------------------------------------- streams


class Stream:
    """Hand-written HTTP/1.1 chunked body writer.

    ``event()`` applies a rotating pattern so framing is exercised: event 0
    goes out as one chunk, event 1 is split across writes (in the middle),
    event 2 is held back and written together with event 3 in one write,
    and so on. Any write holding a multibyte UTF-8 character is also cut
    right after that character's first byte.
    With ``mixed=False`` every event is exactly one chunk (fast path).
    """

    def __init__(self, ex: Exchange, mixed: bool = True):
        self.ex = ex
        self.server = ex.server
        self.mixed = mixed
        self._n = 0
        self._pending = b""
        self.closed = False

    # -- low level
    def chunk(self, data: bytes | str) -> None:
        """Send one chunk (write + flush)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not data:
            return
        self.ex.write(b"%x\r\n%s\r\n" % (len(data), data))

    def split(self, data: bytes | str, cuts: Iterable[int] | None = None) -> None:
        """Send *data* as several chunks cut at byte offsets *cuts*.

        By default cut inside the first multibyte character (if any) and in
        the middle of the payload.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        if cuts is None:
            cuts = default_cuts(data)
        last = 0
        for c in sorted(set(c for c in cuts if 0 < c < len(data))):
            self.chunk(data[last:c])
            last = c
        self.chunk(data[last:])

    def event(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not self.mixed:
            self.chunk(data)
            return
        mode = self._n % 3
        self._n += 1
        multibyte = any(b >= 0xC0 for b in data)
        if self._pending:
            data, self._pending = self._pending + data, b""
            self.split(data) if multibyte else self.chunk(data)
        elif mode == 2:
            self._pending = data
        elif mode == 1 or multibyte:
            self.split(data)
        else:
            self.chunk(data)

    def flush(self) -> None:
        if self._pending:
            data, self._pending = self._pending, b""
            self.chunk(data)

    # -- endings
    def end(self) -> None:
        """Proper end of the chunked body."""
        self.flush()
        self.ex.write(b"0\r\n\r\n")
        self.closed = True

    def abort(self) -> None:
        """Close the socket without the terminating chunk."""
        self.flush()
        self.ex.abort()
        self.closed = True

    def stall(self, timeout: float | None = None) -> None:
        """Send nothing until the server stops, *timeout* passes or the client hangs up."""
        self.flush()
        end = time.monotonic() + (self.server.stall_timeout if timeout is None else timeout)
        while not self.server._stopping.wait(0.01):
            if self.ex.peer_closed():
                self.server._note_disconnect(self.ex.req)
                return
            if time.monotonic() >= end:
                return

    def sleep(self, seconds: float) -> bool:
        """Pause between events; False when the server is stopping."""
        self.flush()
        return not self.server._stopping.wait(seconds)


def default_cuts(data: bytes) -> list[int]:
    cuts = [len(data) // 2]
    for i, b in enumerate(data):
        if b >= 0xC0:  # lead byte of a multibyte character: cut right after it
            cuts.append(i + 1)
            break
    return cuts


class Encoder:
    """Protocol hooks used by :meth:`LoopbackServer.drive`."""

    def start(self) -> bytes | None:
        return None

    def piece(self, text: str) -> bytes:
        raise NotImplementedError

    def finish(self, plan: Plan, sent: int) -> bytes | None:
        return None

    def error(self, fault: str) -> bytes | None:
        return None


# ---------------------------------------------------------------- exchange


class Exchange:
    """One request/response pair, handed to route handlers."""

    def __init__(self, server: LoopbackServer, handler: BaseHTTPRequestHandler, req: Recorded):
        self.server = server
        self.h = handler
        self.req = req
        self.head_only = req.method == "HEAD"

    @property
    def json(self) -> Any:
        return self.req.json

    def write(self, data: bytes) -> None:
        try:
            self.h.wfile.write(data)
            self.h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            self.server._note_disconnect(self.req)
            self.h.close_connection = True
            raise ClientGone() from exc
        except OSError as exc:  # e.g. socket already shut down by stop()
            self.h.close_connection = True
            raise ClientGone() from exc

    def peer_closed(self) -> bool:
        """True when the client closed its end (the socket reads end-of-file)."""
        conn = self.h.connection
        try:
            readable, _, _ = select.select([conn], [], [], 0)
            return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def abort(self) -> None:
        self.h.close_connection = True
        try:
            self.h.wfile.flush()
        except OSError:
            pass
        try:
            self.h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _head(self, status: int, headers: dict[str, str]) -> None:
        h = self.h
        h.send_response_only(status)
        h.send_header("Date", http_date_now())
        for k, v in headers.items():
            h.send_header(k, v)
        try:
            h.end_headers()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
            self.server._note_disconnect(self.req)
            h.close_connection = True
            raise ClientGone() from exc

    def send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        hdrs = {"Content-Type": content_type, "Content-Length": str(len(body))}
        hdrs.update(headers or {})
        self._head(status, hdrs)
        if body and not self.head_only:
            self.write(body)

    def send_json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.send(status, body, "application/json", headers)

    def send_text(
        self,
        text: str,
        status: int = 200,
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send(status, text.encode("utf-8"), content_type, headers)

    def send_truncated(self, body: bytes, content_type: str, status: int = 200) -> None:
        """Announce the full Content-Length, send half, then close."""
        self._head(status, {"Content-Type": content_type, "Content-Length": str(len(body))})
        self.write(body[: len(body) // 2])
        self.abort()

    def stall_then_abort(self) -> None:
        self.server._stopping.wait(self.server.stall_timeout)
        self.abort()

    def stream(
        self, content_type: str, status: int = 200, headers: dict[str, str] | None = None, mixed: bool = True
    ) -> Stream:
        hdrs = {"Content-Type": content_type, "Transfer-Encoding": "chunked"}
        hdrs.update(headers or {})
        self._head(status, hdrs)
        return Stream(self, mixed=mixed)


# ---------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Loopback/1.0"
    sys_version = ""
    timeout = 60  # idle keep-alive connections do not live forever

    def setup(self):
        super().setup()
        self.server.owner._conn_opened(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.owner._conn_closed(self.connection)

    def log_message(self, format, *args):
        pass

    def _do(self):
        self.server.owner._dispatch(self)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _do


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: LoopbackServer

    def handle_error(self, request, client_address):
        # A client resetting an idle keep-alive connection (or stop() shutting
        # sockets) is normal here; anything else is a bug worth printing.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


Route = Callable[[Exchange], None]


class LoopbackServer:
    """Base class: recording, planned failures, routing, chunked streams.

    Settable attributes (plain instance attributes):

    * ``models`` - model names served.
    * ``api_key`` - when set, requests must carry ``Authorization: Bearer <api_key>``
      (only for servers whose protocol has auth).
    * ``fail_next`` - list of planned failures, one consumed per request (any
      path), each ``(status, headers)`` or ``(status, headers, code)``.
    * ``stall_timeout`` - how long stalls last at most (seconds).
    * ``slow_pieces`` / ``slow_delay`` - shape of the ``slow`` model.
    * ``reply`` - when set, ``reply(prompt_text)`` is the answer of every ordinary model
      (instead of the echo); ``request_delay`` - seconds each generation waits first.
    * ``max_in_flight`` - the most requests that were being handled at the same time.
    * ``slots`` - how many generations (``generation_paths``) run at once (None: any);
      ``queued`` - how many wait for a slot now.
    * ``listen_queue`` - connections the kernel holds before they are accepted (set before
      ``start``): socketserver's 5 by default, which a test fills to make a connect hang;
      real servers take far more (uvicorn 2048), as forty clients connecting at once need.
    * ``json_reply`` - when set, ``json_reply(prompt_text, schema)`` is the answer of a request
      that asks for JSON (``schema`` None for plain JSON mode); by default a value of the
      schema made from the prompt (``tests/servers/structured.py``).
    * ``refuse_formats`` - the ways of asking for JSON this server refuses, in its
      protocol's words (OpenAI: ``json_schema``, ``json_object+schema``, ``json_object``;
      Ollama: ``schema``, ``json``), each with the error the real servers give.
    """

    default_models: tuple[str, ...] = ("test-model", "vision-model")
    generation_paths: tuple[str, ...] = ()  # the requests a slot serves

    def __init__(self, models: list[str] | None = None, api_key: str | None = None):
        self.models: list[str] = list(models) if models is not None else list(self.default_models)
        self.api_key = api_key
        self.fail_next: list[tuple] = []
        self.stall_timeout = 10.0
        self.slow_pieces = 50
        self.slow_delay = 0.02
        self.reply: Callable[[str], str] | None = None
        self.json_reply: Callable[[str, Any], str] | None = None
        self.refuse_formats: set[str] = set()
        self.request_delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.slots: int | None = None
        self.listen_queue = _HTTPServer.request_queue_size
        self.queued = 0
        self._slots_busy = 0
        self._slot_freed = threading.Condition()
        self.requests: list[Recorded] = []
        self.disconnects: list[Recorded] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._vocab: dict[str, int] = {}
        self._routes: dict[tuple[str, str], Route] = {}
        self._prefix_routes: list[tuple[str, str, Route]] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.setup_routes()

    # -- subclass API
    def setup_routes(self) -> None:
        """Register routes with :meth:`route`."""

    def route(self, method: str, path: str, fn: Route) -> None:
        """Register *fn*; a path ending in ``/*`` matches by prefix."""
        if path.endswith("/*"):
            self._prefix_routes.append((method, path[:-1], fn))
        else:
            self._routes[(method, path)] = fn

    def check_auth(self, ex: Exchange) -> bool:
        """Return True when the request was answered (refused)."""
        return False

    def not_found(self, ex: Exchange) -> None:
        ex.send_json({"detail": "Not Found"}, 404)

    def planned_failure(self, ex: Exchange, status: int, headers: dict[str, str], code: str | None) -> None:
        raise NotImplementedError

    # -- lifecycle
    def start(self, port: int = 0) -> LoopbackServer:
        self._stopping.clear()
        self._httpd = _HTTPServer(("127.0.0.1", port), _Handler, bind_and_activate=False)
        self._httpd.request_queue_size = self.listen_queue
        try:
            self._httpd.server_bind()
            self._httpd.server_activate()
        except BaseException:
            self._httpd.server_close()
            raise
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"{type(self).__name__}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def pause_accepting(self) -> None:
        """Stop taking connections: the kernel queues them until its listen queue is full."""
        assert self._httpd is not None and self._thread is not None, "server not started"
        self._httpd.shutdown()  # ends serve_forever; the listening socket stays open
        self._thread.join(timeout=5)

    def resume_accepting(self) -> None:
        """Take connections again, the queued ones first."""
        assert self._httpd is not None, "server not started"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"{type(self).__name__}",
            daemon=True,
        )
        self._thread.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- recording helpers
    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.disconnects.clear()
        self.fail_next.clear()

    @property
    def last_request(self) -> Recorded | None:
        with self._lock:
            return self.requests[-1] if self.requests else None

    def requests_to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for_disconnect(self, timeout: float = 2.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.disconnects:
                return True
            time.sleep(0.01)
        return bool(self.disconnects)

    def _note_disconnect(self, req: Recorded) -> None:
        with self._lock:
            self.disconnects.append(req)

    def _conn_opened(self, c: socket.socket) -> None:
        with self._lock:
            self._conns.add(c)

    def _conn_closed(self, c: socket.socket) -> None:
        with self._lock:
            self._conns.discard(c)

    # -- plumbing
    def _read_body(self, h: BaseHTTPRequestHandler) -> bytes:
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            parts = []
            for _ in range(100_000):  # bounded
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(h.rfile.read(size))
                h.rfile.readline()
            return b"".join(parts)
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    def _take_fault(self) -> tuple | None:
        with self._lock:
            return self.fail_next.pop(0) if self.fail_next else None

    def _find_route(self, method: str, path: str) -> Route | None:
        fn = self._routes.get((method, path))
        if fn is not None:
            return fn
        for m, prefix, f in self._prefix_routes:
            if m == method and path.startswith(prefix) and len(path) > len(prefix):
                return f
        return None

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        body = self._read_body(h)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        req = Recorded(
            h.command,
            parts.path,
            {k.lower(): v for k, v in h.headers.items()},
            parsed,
            body,
            parse_qs(parts.query),
            tuple(h.client_address[:2]),
        )
        with self._lock:
            self.requests.append(req)
        ex = Exchange(self, h, req)
        try:
            fn = self._find_route(req.method, req.path)
            if fn is None:
                self.not_found(ex)
                return
            if self.check_auth(ex):
                return
            fault = self._take_fault()
            if fault is not None:
                status, headers = fault[0], dict(fault[1]) if len(fault) > 1 else {}
                code = fault[2] if len(fault) > 2 else None
                self.planned_failure(ex, status, headers, code)
                return
            slot = self.slots is not None and req.path in self.generation_paths
            if slot and not self._take_slot(ex):
                h.close_connection = True
                return
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                fn(ex)
            finally:
                with self._lock:
                    self.in_flight -= 1
                if slot:
                    with self._slot_freed:
                        self._slots_busy -= 1
                        self._slot_freed.notify_all()
        except ClientGone:
            h.close_connection = True

    def _take_slot(self, ex: Exchange) -> bool:
        """Wait for a free slot, sending nothing; False when the client left (or we stop) first."""
        with self._slot_freed:
            self.queued += 1
            try:
                while self.slots is not None and self._slots_busy >= self.slots:
                    if ex.peer_closed():
                        self._note_disconnect(ex.req)
                        return False
                    if self._stopping.is_set():
                        return False
                    self._slot_freed.wait(0.01)
                self._slots_busy += 1
                return True
            finally:
                self.queued -= 1

    # -- word tokens (one token per whitespace-separated word, ids from 1000)
    def word_tokens(self, text: str) -> list[int]:
        with self._lock:
            return [self._vocab.setdefault(w, 1000 + len(self._vocab)) for w in text.split()]

    def word_text(self, ids: list[int]) -> list[str]:
        with self._lock:
            inv = {v: k for k, v in self._vocab.items()}
        return [inv.get(i, f"<{i}>") for i in ids]

    # -- generation
    def plan(self, model: str, prompt_text: str, limit: int | None) -> Plan:
        if self.request_delay:
            self._stopping.wait(self.request_delay)
        if self.reply is not None and not is_special_model(model):
            plan = Plan(model, split_pieces(self.reply(prompt_text)))
            if limit is not None and 0 < limit < len(plan.pieces):
                plan.pieces, plan.finish = plan.pieces[:limit], "length"
            return plan
        return plan_reply(model, prompt_text, limit, slow_pieces=self.slow_pieces, slow_delay=self.slow_delay)

    def json_plan(self, model: str, prompt_text: str, schema: Any, limit: int | None) -> Plan:
        """The plan of an answer asked for as JSON: the grammar-bound answer a real server gives."""
        from .structured import json_text

        if self.request_delay:
            self._stopping.wait(self.request_delay)
        plan = Plan(model, split_pieces(json_text(self, prompt_text, schema)))
        if limit is not None and 0 < limit < len(plan.pieces):
            plan.pieces, plan.finish = plan.pieces[:limit], "length"
        return plan

    def knows_model(self, model: str) -> bool:
        if is_special_model(model):
            return True
        return model in self.models

    def drive(
        self, stream: Stream, plan: Plan, enc: Encoder, cancelled: Callable[[], bool] | None = None
    ) -> int:
        """Write a whole generation through *enc*, honouring the plan's fault.

        Returns the number of pieces sent.
        """
        start = enc.start()
        if start:
            stream.event(start)
        if plan.fault == "stall-before":
            stream.stall()
            stream.abort()
            return 0
        sent = 0
        stop_at = plan.fault_at if plan.fault else len(plan.pieces)
        for piece in plan.pieces[:stop_at]:
            if cancelled is not None and cancelled():
                break
            stream.event(enc.piece(piece))
            sent += 1
            if plan.delay and not stream.sleep(plan.delay):
                stream.abort()
                return sent
        fault = plan.fault
        if fault is None:
            tail = enc.finish(plan, sent)
            stream.flush()  # the terminator gets chunks of its own
            if tail:
                stream.chunk(tail)
            stream.end()
        elif fault in ("fail-midstream", "fail-midstream-llamacpp"):
            err = enc.error(fault)
            stream.flush()
            if err:
                stream.chunk(err)
            stream.end()
        elif fault == "truncate":
            stream.abort()
        elif fault == "truncate-clean":
            stream.end()
        elif fault == "truncate-midline":
            data = enc.piece("cut here")
            stream.flush()
            stream.chunk(data[: len(data) // 2])
            stream.abort()
        elif fault == "stall":
            stream.stall()
            stream.abort()
        return sent

    def nonstream_fault(self, ex: Exchange, plan: Plan, body: bytes, content_type: str) -> bool:
        """Non-streaming variants of the faults; True when handled.

        ``stall``/``stall-before`` wait before the headers, ``truncate*``
        announce a Content-Length and send half of it, ``slow`` just waits.
        ``fail-midstream*`` is protocol specific (handled by subclasses).
        """
        if plan.fault in ("stall", "stall-before"):
            ex.stall_then_abort()
            return True
        if plan.fault in ("truncate", "truncate-midline"):
            ex.send_truncated(body, content_type)
            return True
        if plan.delay:
            self._stopping.wait(plan.delay * len(plan.pieces))
        return False


def b64_png() -> str:
    return base64.b64encode(tiny_png()).decode("ascii")
