"""Requests for the HTTP bindings: the client, retries, typed errors and JSON calls.

:class:`HTTPRequests` is the half of :class:`~lollms_magics.bindings.http.HTTPBinding`
that sends requests: one long-lived ``httpx`` client per binding, the
Bearer header, refused connections and 408/409/429/5xx retried with backoff
before any body is read, HTTP failures mapped to typed errors (keys never
shown), the model list added to an unknown-model error, and transport
failures while reading a body turned into a broken stream or a timeout.
The stream loop itself lives in :mod:`lollms_magics.bindings.http`.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from ..errors import (
    BindingError,
    BindingTimeout,
    ProtocolError,
    RequestNotSentError,
    ServerUnreachableError,
    StreamBrokenError,
    UnknownModelError,
)
from ..response import Response
from ..schema import ModelInfo
from ..secret_fields import key_forms
from ..transport import cancel, retry, statuses
from ..transport.client import make_client
from .base import Binding

__all__ = ["HTTPRequests", "normalize_host"]


def normalize_host(host: str, default_port: int | None = None) -> str:
    """Give ``host`` a scheme (and ``default_port`` when it has none); drop a trailing slash."""
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = "http://" + host
    if default_port is not None:
        url = httpx.URL(host)
        if url.port is None and url.scheme == "http":
            host = str(url.copy_with(port=default_port)).rstrip("/")
    return host


def _reason(exc: BaseException) -> str:
    return statuses.one_line(str(exc) or type(exc).__name__, 160)


class HTTPRequests(Binding):
    """A binding that sends its requests to one server over HTTP, with one long-lived client.

    The settings are documented on :class:`~lollms_magics.bindings.http.HTTPBinding`,
    which every HTTP binding builds on.
    """

    def __init__(
        self,
        host: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        max_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
        verify: bool = True,
    ) -> None:
        super().__init__(host, model, api_key)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max_retries
        self._transport = transport
        self._verify = verify
        self._client: httpx.Client | None = None
        self._listing_models = False
        # The wait before a retry: a cancel of the answer ends it. Tests may put
        # a recorder in its place to keep retries fast.
        self._sleep: Callable[[float], None] = self._pause

    # -- the client ----------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        """The binding's long-lived ``httpx.Client`` (one connection pool per server)."""
        if self._client is None:
            self._client = make_client(
                self.host,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                transport=self._transport,
                verify=self._verify,
            )
        return self._client

    def close(self) -> None:
        """Close the HTTP client (a later call opens a new one)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _normalize_host(self, host: str) -> str:
        return normalize_host(host)

    def _url(self, path: str) -> str:
        return self.host + path

    def _headers(self) -> dict[str, str]:
        if self._api_key:
            if not self._api_key.isascii():  # httpx would fail with a UnicodeEncodeError
                raise RequestNotSentError(
                    f"the API key for {self.name} holds a character outside ASCII, which an HTTP "
                    "header cannot carry; check that it was copied whole (it is not shown here)",
                    binding=self.name,
                    url=self.host,
                )
            return {"Authorization": f"Bearer {self._api_key}"}
        return {}

    # -- requests ----------------------------------------------------------------

    def _open(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """Send a request and return the open response once its status is a success.

        Refused connections and 408/409/429/5xx are retried with backoff
        (honouring ``Retry-After`` up to a cap) before any body is read.
        The caller closes the response.
        """
        url = self._url(path)
        answer = cancel.current()
        extensions = {"trace": _connection_tracer(answer)} if answer is not None else None
        attempt = 0
        while True:
            request = self.client.build_request(
                method, url, json=body, headers=self._headers(), extensions=extensions
            )
            try:
                response = self.client.send(request, stream=True)
            except httpx.ConnectError as exc:
                if attempt < self.max_retries and not _stopped(answer):
                    self._sleep(retry.backoff_delay(attempt))
                    if not _stopped(answer):  # no retry after a cancel during the wait
                        attempt += 1
                        continue
                raise self._unreachable(exc, url) from None
            except httpx.TimeoutException:
                raise BindingTimeout(
                    f"{self.name} at {self.host} did not answer within the timeout; "
                    "raise it (--timeout, or read_timeout=) or check the server",
                    binding=self.name,
                    url=url,
                ) from None
            except httpx.LocalProtocolError:
                # httpx refused our own request before sending it (a header value it
                # cannot carry): the server was never asked, so it is not "unreachable",
                # and the exception's text quotes the header, so it is not shown.
                raise RequestNotSentError(
                    f"{self.name}: the request to {self.host} could not be sent, as a header holds "
                    "a character HTTP does not allow; check the API key (it is not shown here)",
                    binding=self.name,
                    url=url,
                ) from None
            except httpx.HTTPError as exc:
                raise self._unreachable(exc, url) from None
            # httpcore would call the tracer twice per chunk of the body: it is
            # needed only until the headers are in (the same dict reaches httpcore).
            request.extensions.pop("trace", None)
            if response.status_code < 400:
                return response
            try:
                body_bytes = response.read()
            except httpx.HTTPError:
                body_bytes = b""
            finally:
                response.close()
            error = self._status_error(response, body_bytes, url)
            _, code = statuses.error_details(body_bytes)
            if not _stopped(answer) and attempt < self.max_retries and retry.should_retry(
                response.status_code, response.headers, code
            ):
                wait = retry.parse_retry_after(response.headers)
                if wait is not None and wait > retry.RETRY_AFTER_CAP:
                    raise error  # the server wants far longer than we should block a cell
                self._sleep(wait if wait else retry.backoff_delay(attempt))
                if not _stopped(answer):  # no retry after a cancel during the wait
                    attempt += 1
                    continue
            raise error

    def _pause(self, seconds: float) -> None:
        """Wait before a retry; a cancel of the answer being opened ends the wait at once."""
        answer = cancel.current()
        if answer is None:
            time.sleep(seconds)
        else:
            answer.pause(seconds)

    def _unreachable(self, exc: httpx.HTTPError, url: str) -> ServerUnreachableError:
        reason = _reason(exc)
        if self._api_key:  # a library's message never quotes our key, but make sure
            for form in key_forms(self._api_key):
                reason = reason.replace(form, "<your key>")
        return ServerUnreachableError(
            f"cannot reach {self.name} at {self.host} ({reason}); {self.start_hint}",
            binding=self.name,
            url=url,
        )

    def _status_error(self, response: httpx.Response, body: bytes, url: str) -> BindingError:
        if self._api_key:
            # Some servers and proxies quote the key they refused, raw or escaped; never show it.
            for form in key_forms(self._api_key):
                body = body.replace(form.encode("utf-8"), b"<your key>")
        error = statuses.status_error(
            response.status_code,
            body,
            response.headers,
            binding=self.name,
            url=url,
            key_hint=self._key_hint(),
        )
        if isinstance(error, UnknownModelError) and not self._listing_models:
            self._add_available_models(error)
        return error

    def _add_available_models(self, error: UnknownModelError) -> None:
        # The flag stops a 404 from the model listing itself from listing again.
        self._listing_models = True
        try:
            error.available = [m.name for m in self._list_models()]
        except BindingError:
            return
        finally:
            self._listing_models = False
        if error.available:
            shown = ", ".join(error.available[:12])
            more = ", ..." if len(error.available) > 12 else ""
            error.message = f"{error.message}; available: {shown}{more}"
        else:
            error.message = f"{error.message}; the server has no models"
        error.args = (error.message,)

    def _request_json(self, method: str, path: str, body: Any = None) -> Any:
        """Send a request and return its JSON body (errors typed as for generation)."""
        response = self._open(method, path, body)
        try:
            with self._reading(response, ""):
                response.read()
        finally:
            response.close()
        try:
            return response.json()
        except ValueError:
            raise ProtocolError(
                f"{self.name} at {self.host} sent something that is not JSON for {path}; "
                "is this the right kind of server?",
                binding=self.name,
                url=str(response.url),
            ) from None

    def _get_json(self, path: str) -> Any:
        """GET ``path`` and return its JSON body."""
        return self._request_json("GET", path)

    def _default_model(self) -> str | None:
        """The model to use when none was given: the server's first."""
        if self.model is None:
            models: list[ModelInfo] = self._list_models()
            if not models:
                raise UnknownModelError(
                    f"{self.name} at {self.host} has no models; install one on the server, "
                    "or name one with model=",
                    binding=self.name,
                    url=self.host,
                )
            self.model = models[0].name
        return self.model

    @contextlib.contextmanager
    def _reading(
        self, response: httpx.Response, what: str = "the answer", answer: Response | None = None
    ) -> Iterator[None]:
        """Turn transport failures while reading a body into StreamBrokenError.

        With ``answer``, silence before its first piece of text is a
        :class:`BindingTimeout` (the server never started answering), not a
        broken stream.
        """
        try:
            yield
        except httpx.TimeoutException:
            if answer is not None and answer._first is None:
                raise BindingTimeout(
                    f"{self.name} at {self.host} sent no text within {self.read_timeout:g} s; "
                    "the model may still be loading: raise the timeout (--timeout, or "
                    "read_timeout=) or check the server",
                    binding=self.name,
                    url=str(response.url),
                ) from None
            raise StreamBrokenError(
                f"{self.name} at {self.host} went silent for {self.read_timeout:g} s "
                f"in the middle of {what or 'its answer'}; the server may be stuck",
                binding=self.name,
                url=str(response.url),
            ) from None
        except httpx.HTTPError as exc:
            raise StreamBrokenError(
                f"{self.name} at {self.host} closed the connection before finishing "
                f"{what or 'its answer'} ({_reason(exc)})",
                binding=self.name,
                url=str(response.url),
            ) from None

    def _broken(self, message: str, response: httpx.Response) -> StreamBrokenError:
        return StreamBrokenError(
            f"{self.name} at {self.host}: {message}", binding=self.name, url=str(response.url)
        )


def _stopped(answer: cancel.Owner | None) -> bool:
    return answer is not None and answer.cancelled


def _connection_tracer(answer: cancel.Owner) -> Callable[[str, dict[str, Any]], None]:
    """An httpx trace hook that lets ``answer.cancel()`` cut a new connection before any header.

    The clients of :func:`make_client` do not need it (their backend hands over
    every connection, pooled ones too); it covers the connections of other
    transports, such as the ones httpx makes for a proxy.
    """

    def trace(event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                answer.on_abort(lambda: sock.shutdown(socket.SHUT_RDWR))

    return trace
