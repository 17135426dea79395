"""A cap on every response body a client of ours reads.

Whole answers, model lists, settings and pictures are read with
``response.read()`` or ``response.json()``, which keep the entire body in
memory. A server that sends without end (a misconfigured proxy, ``/dev/zero``
behind a URL, a stream that never closes) would fill it. Each response a
client of :func:`~lollms_magics.transport.client.make_client` receives goes
through :func:`install_client`: a body announced longer than
:data:`MAX_BODY_BYTES` is refused before it is read, and one that grows past
it fails at that point, with a :class:`~lollms_magics.errors.ResponseTooLargeError`
in one line. The bound sits here, at the transport, so that no reader of a
binding, an image server or a probe can forget it.

Streamed answers are bounded per event by :mod:`.framing` as well; this cap
is on the whole body, far above any answer or batch of pictures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx  # this module is imported only where a client is made

from ..errors import ResponseTooLargeError

__all__ = ["MAX_BODY_BYTES", "cap", "install_client"]

# A whole answer is a few hundred kilobytes; a batch of four large pictures in
# base64 is tens of megabytes. Past this, the server is not answering.
MAX_BODY_BYTES = 256 * 1024 * 1024


def _too_large(url: object, limit: int) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"the server at {_origin(url)} sent a response of more than {_size(limit)} "
        "(lollms_magics.transport.bounded.MAX_BODY_BYTES); check the server and the URL",
        url=_origin(url),
    )


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit} bytes"


def _origin(url: object) -> str:
    # Scheme, host and path only: a query string may hold a key (?key=...).
    text = str(url)
    return text.split("?", 1)[0]


class _CappedStream(httpx.SyncByteStream):
    """The body of one response, counted as it is read."""

    def __init__(self, inner: Any, url: object, limit: int) -> None:
        self._inner = inner
        self._url = url
        self._limit = limit

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        for chunk in self._inner:
            size += len(chunk)
            if size > self._limit:
                raise _too_large(self._url, self._limit)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class _Bounded(httpx.BaseTransport):
    """Wraps a transport so that each body it returns is capped."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        return cap(response, request.url)

    def close(self) -> None:
        self.inner.close()


def cap(response: httpx.Response, url: object, limit: int | None = None) -> httpx.Response:
    """Give ``response`` a body that fails past ``limit`` bytes (default :data:`MAX_BODY_BYTES`)."""
    limit = MAX_BODY_BYTES if limit is None else limit  # read per call, so that a test may lower it
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        response.close()
        raise _too_large(url, limit)
    response.stream = _CappedStream(response.stream, url, limit)
    return response


def install_client(client: httpx.Client) -> None:
    """Cap the bodies of every transport of ``client``: its default one and its proxies'."""
    client._transport = _Bounded(client._transport)
    mounts: dict[Any, Any] = getattr(client, "_mounts", {})
    for pattern, transport in list(mounts.items()):
        if transport is not None:
            mounts[pattern] = _Bounded(transport)
