"""Cutting the connection of a request that another thread was asked to stop.

A Stop button runs :meth:`Response.cancel` in another thread than the one
blocked in the socket; only shutting that socket down wakes the blocked call.
The hard part is knowing which socket: a request sent on a pooled keep-alive
connection opens none, so httpx's ``connect_tcp`` trace never shows it, and
a queued request on a one-slot server (llama.cpp, Ollama) may then wait for
its headers until the read timeout.

So the clients made by :func:`~lollms_magics.transport.client.make_client`
run their connections through :class:`CancellableBackend`. Each connection
remembers who sends on it: whenever a request writes to it, the *owner*
that is current in that thread (set by :func:`owned_by` around the sending
of an answer's request) is given a way to shut the socket down, which works
whatever the phase: connecting, writing, queued before the headers, or
streaming the body. A later request by someone else takes the connection
over, so an old owner's cancel never cuts a request that is not its own.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

import httpcore

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = ["CancellableBackend", "Owner", "Stop", "current", "install", "install_client", "owned_by"]

try:  # the stream httpcore puts over a plain socket; private, hence guarded
    from httpcore._backends.sync import SyncStream as _SyncStream
except ImportError:  # pragma: no cover - another httpcore: connecting is not cancellable
    _SyncStream = None  # type: ignore[assignment,misc]


class Owner(Protocol):
    """Who may ask for a request to stop: :class:`~lollms_magics.response.Response` is one."""

    @property
    def cancelled(self) -> bool:
        """True once stopped."""

    def on_abort(self, abort: Callable[[], None]) -> None:
        """Call ``abort()`` when stopped (at once when already stopped)."""

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``, or less when stopped meanwhile; True when stopped."""


class Stop:
    """An :class:`Owner` for requests that make no :class:`Response` (an image job in a worker thread).

    :meth:`cancel`, from any thread, cuts the connections of the requests
    sent under :func:`owned_by` and ends their retry waits; none is retried.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._aborters: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._event.is_set()

    def on_abort(self, abort: Callable[[], None]) -> None:
        """Call ``abort()`` on :meth:`cancel` (at once when already cancelled)."""
        with self._lock:
            self._aborters.append(abort)
        if self.cancelled:
            _quietly(abort)

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``, or less when cancelled meanwhile; True when cancelled."""
        return self._event.wait(max(seconds, 0.0))

    def cancel(self) -> None:
        """Stop the requests: cut their connections and end their waits."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            aborters = list(self._aborters)
        for abort in aborters:
            _quietly(abort)


def _quietly(abort: Callable[[], None]) -> None:
    try:
        abort()
    except OSError:  # the connection is already gone
        pass


_owner: ContextVar[Owner | None] = ContextVar("lollms_magics_request_owner", default=None)


def current() -> Owner | None:
    """The owner of the requests this thread sends now, if any."""
    return _owner.get()


@contextlib.contextmanager
def owned_by(owner: Owner) -> Iterator[None]:
    """Make ``owner`` the owner of the connections the requests in this block use."""
    token = _owner.set(owner)
    try:
        yield
    finally:
        _owner.reset(token)


def _shut(sock: Any) -> None:
    try:
        if isinstance(sock, socket.socket):
            # The plain socket's call, also for a TLS one: ssl's own would drop the
            # TLS state under the thread that is reading from it.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed, or never connected
        pass


class _Stream(httpcore.NetworkStream):
    """A connection's stream that a cancel of its current owner can cut."""

    def __init__(self, inner: httpcore.NetworkStream, owner: Owner | None) -> None:
        self._inner = inner
        # Weak: a pooled connection must not keep a finished answer (and its text) alive.
        self._owner: weakref.ref[Owner] | None = None
        self._claim(owner)

    def _owned_by(self, owner: Owner | None) -> bool:
        if self._owner is None:
            return owner is None
        return self._owner() is owner

    def _claim(self, owner: Owner | None) -> None:
        if self._owned_by(owner):
            return
        self._owner = None if owner is None else weakref.ref(owner)
        if owner is not None:
            owner.on_abort(lambda: self._cut(owner))

    def _cut(self, owner: Owner) -> None:
        if self._owned_by(owner):  # still this owner's request on the connection
            sock = self._inner.get_extra_info("socket")
            if sock is not None:
                _shut(sock)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        # Every request starts by writing its headers, in the thread that sends it.
        self._claim(_owner.get())
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        owner = self._owner() if self._owner is not None else None
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, timeout), owner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class CancellableBackend(httpcore.NetworkBackend):
    """httpcore's network backend, with connections the owner of their request can cut."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        owner = _owner.get()
        if owner is None or _SyncStream is None or not isinstance(self._inner, httpcore.SyncBackend):
            stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        else:
            stream = _SyncStream(_connect(owner, host, port, timeout, local_address, socket_options))
        return _Stream(stream, owner)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options), _owner.get())

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _connect(
    owner: Owner,
    host: str,
    port: int,
    timeout: float | None,
    local_address: str | None,
    socket_options: Iterable[Any] | None,
) -> socket.socket:
    """``socket.create_connection``, with each socket handed to ``owner`` before it connects.

    A server whose listen queue is full drops the handshake, and a connect
    then blocks until its timeout; shutting the socket down ends it at once.
    """
    options = list(socket_options or ())
    last: OSError | None = None
    try:
        addresses = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(str(exc)) from exc
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            owner.on_abort(functools.partial(_shut, sock))
            for option in options:
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            if local_address is not None:
                sock.bind((local_address, 0))
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except TimeoutError as exc:
            sock.close()
            raise httpcore.ConnectTimeout(str(exc) or "timed out") from exc
        except OSError as exc:
            sock.close()
            last = exc
    raise httpcore.ConnectError(str(last) if last else f"no address for {host}") from last


def install(transport: httpx.HTTPTransport) -> httpx.HTTPTransport:
    """Put :class:`CancellableBackend` under ``transport``'s connection pool; returns it.

    httpx has no public way to choose the backend of its pool; when a
    version keeps it elsewhere, the transport is left as it is and a cancel
    falls back to the connections httpx's trace shows (new ones).
    """
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, CancellableBackend):
        pool._network_backend = CancellableBackend(backend)  # type: ignore[union-attr]
    return transport


def install_client(client: httpx.Client) -> None:
    """:func:`install` under each of ``client``'s own transports: its default one and its proxies'.

    A transport that is not httpx's (a test's, a tape's) is left alone.
    """
    import httpx

    mounts: dict[Any, Any] = getattr(client, "_mounts", {})
    for transport in (getattr(client, "_transport", None), *mounts.values()):
        if isinstance(transport, httpx.HTTPTransport):
            install(transport)
