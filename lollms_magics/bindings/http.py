"""The base of the HTTP bindings: what every one of them would otherwise repeat.

An HTTP binding describes its request (:meth:`HTTPBinding._call`) and reads
one event of its stream (:meth:`HTTPBinding._on_event`); this class opens
the request with retries, maps HTTP failures to typed errors, splits the
body by the protocol's framing, closes the response in every case, checks
that the stream really ended, and lets :meth:`Response.cancel` cut a read
that is blocked on a silent server.

The read loop is one generator per answer, and each event costs one
function call into the binding: the streaming benchmark keeps this within a
few percent of a plain httpx reader (``benchmarks/README.md``).

Sending requests (the client, retries, status errors, JSON calls) is the
base class's role, in :mod:`lollms_magics.bindings.http_requests`; this
module keeps the stream loop and the hooks a binding fills in.
"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx

from ..response import Response
from ..schema import GenerationRequest
from ..transport import cancel, tape
from ..transport.framing import EventTooLarge, SSEErrorField, ndjson_lines, sse_data
from .http_requests import HTTPRequests, normalize_host

__all__ = ["HTTPBinding", "ReportedError", "normalize_host"]


class ReportedError(Exception):
    """Raised by a binding's ``_on_event`` for an error the server reported inside the stream.

    The stream loop turns it into a :class:`StreamBrokenError` naming the server.
    """


class HTTPBinding(HTTPRequests):
    """A binding that talks to one server over HTTP, with one long-lived client.

    Parameters
    ----------
    host, model, api_key:
        As for :class:`~lollms_magics.bindings.base.Binding`; the key is sent
        as a Bearer header.
    connect_timeout, read_timeout:
        Seconds to wait for a connection, and for each piece of the answer
        (a stream that stays silent longer is reported as broken).
    max_retries:
        How many times a refused connection, 408, 409, 429 or 5xx is retried
        before the body starts.
    transport:
        An ``httpx`` transport, for tests (``httpx.MockTransport``).
    verify:
        Check the server's TLS certificate.
    """

    # How the stream's body is cut into events: "sse", "ndjson" or "text" (raw pieces).
    framing: ClassVar[str] = "sse"
    # An event that ends the stream (OpenAI's "[DONE]"); None when the protocol has none.
    end_marker: ClassVar[bytes | None] = None
    # What a whole answer is, for the message when a body is something else.
    answer_kind: ClassVar[str] = "an answer this binding can read"

    # -- what a binding describes ----------------------------------------------

    def _call(self, request: GenerationRequest, response: Response) -> tuple[str, str, Any]:
        """The method, path and JSON body of the generation request."""
        raise NotImplementedError

    def _on_event(self, event: Any, response: Response) -> str | None:
        """Read one decoded event of the stream: its text, if any; fill ``response`` from it.

        Raise :meth:`_broken` for an error the server reports in the stream.
        """
        raise NotImplementedError

    def _on_body(self, data: Any, response: Response) -> str:
        """Read a whole (non-streamed) JSON answer: its text."""
        raise NotImplementedError

    def _stream_complete(self, response: Response) -> bool:
        """After the body ended without the end marker: whether the answer was whole anyway."""
        return False

    def _opened(self, http: httpx.Response, request: GenerationRequest) -> None:
        """Called with the open response before its body is read (to spot errors in a 200)."""

    def _send(self, request: GenerationRequest, response: Response) -> httpx.Response:
        """Describe the request (:meth:`_call`) and open it."""
        method, path, body = self._call(request, response)
        return self._open(method, path, body)

    def _framing(self) -> str:
        """The framing of the answer about to be read (a binding may speak several protocols)."""
        return self.framing

    # -- the stream loop -------------------------------------------------------

    def _generate(self, request: GenerationRequest, response: Response) -> Iterator[str]:
        # The connection the request goes on, a pooled one too, is the answer's:
        # its cancel cuts it, whether connecting, queued or streaming.
        with cancel.owned_by(response):
            http = self._send(request, response)
        response.on_abort(lambda: _shutdown(http))
        framing = self._framing()
        try:
            self._opened(http, request)
            with self._reading(http, answer=response):
                if framing == "text":  # raw pieces, streamed or whole
                    for piece in http.iter_text():
                        if piece:
                            yield piece
                    return
                if not request.stream:
                    http.read()
                    try:
                        text = self._on_body(self._decode(http), response)
                    except ReportedError as exc:
                        raise self._broken(f"the server reported an error: {exc}", http) from None
                    except (AttributeError, TypeError, KeyError, IndexError):
                        raise self._broken(f"the answer is not {self.answer_kind}", http) from None
                    if text:
                        yield text
                    return
                frames = sse_data if framing == "sse" else ndjson_lines
                end = self.end_marker
                loads = json.loads
                on_event = self._on_event
                try:
                    for payload in frames(http.iter_bytes()):
                        if payload == end:
                            return
                        try:
                            event = loads(payload.decode())  # str: json skips its encoding sniffing
                        except ValueError:
                            raise self._broken("the server sent an event that is not JSON", http) from None
                        part = on_event(event, response)
                        if part:
                            yield part
                except SSEErrorField as exc:  # llama.cpp's mid-stream error line
                    raise self._broken(
                        f"the server reported an error: {_event_error(exc.payload)}", http
                    ) from None
                except ReportedError as exc:
                    raise self._broken(f"the server reported an error: {exc}", http) from None
                except EventTooLarge as exc:  # a line that never ends: not buffered for ever
                    raise self._broken(str(exc), http) from None
                except (AttributeError, TypeError, KeyError, IndexError):  # JSON, but not an event
                    raise self._broken("the server sent an event this binding cannot read", http) from None
        except tape.RecordedStop:  # a replayed answer that was stopped here when it was recorded
            response.cancel()
            raise
        finally:
            # A Stop, Ctrl-C or a loop left early: a recorder keeps the answer as stopped, not broken.
            if response._cancelled or isinstance(sys.exc_info()[1], (KeyboardInterrupt, GeneratorExit)):
                tape.reader_stopped(http)
            http.close()
        if not self._stream_complete(response):
            raise self._broken("the stream ended before the answer was complete", http)

    def _decode(self, http: httpx.Response) -> Any:
        try:
            return http.json()
        except ValueError:
            raise self._broken("the answer is not JSON", http) from None


def _shutdown(http: httpx.Response) -> None:
    """Cut the connection under ``http`` so that a read blocked in another thread returns now."""
    stream = http.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        sock.shutdown(socket.SHUT_RDWR)


def _event_error(payload: Any) -> str:
    """The message of an in-stream error, given as JSON text or an event dict."""
    if isinstance(payload, (bytes, str)):
        try:
            payload = json.loads(payload)
        except ValueError:
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
            return text.strip() or "unknown error"
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
