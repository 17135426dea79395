"""The contract every binding follows, and the HTTP machinery they share.

A binding subclasses :class:`Binding` and writes two methods:

* ``_generate(request, response)``: a generator that sends the request and
  yields text pieces as they arrive, filling ``response``'s token counts and
  finish reason from what the server says;
* ``_list_models()``: the server's models.

Everything else (option validation, images, retries, error mapping, timing,
closing streams early) lives here and in :mod:`lollms_magics.response`, so
that a binding module holds only what is particular to its protocol.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from .. import _http
from ..errors import (
    BindingError,
    BindingTimeout,
    InvalidOptionError,
    ProtocolError,
    ServerUnreachableError,
    StreamBrokenError,
    UnknownModelError,
    UnsupportedOptionWarning,
)
from ..images import EncodedImage, ImageInput, encode_image
from ..options import validate_options
from ..response import Response

__all__ = ["Binding", "GenerationRequest", "Message", "ModelInfo"]


@dataclass
class Message:
    """One chat message; ``images`` belong to it (vision models)."""

    role: str
    content: str
    images: list[EncodedImage] = field(default_factory=list)


@dataclass
class GenerationRequest:
    """What a binding is asked to generate, already validated."""

    messages: list[Message]
    model: str | None
    options: dict[str, Any]
    stream: bool


@dataclass(frozen=True)
class ModelInfo:
    """A model a server offers: its name and whatever details the server gave."""

    name: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


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


def build_messages(
    prompt_or_messages: str | Sequence[Mapping[str, Any]],
    system: str | None,
    images: Sequence[ImageInput] | None,
) -> list[Message]:
    """Turn a prompt or a list of ``{"role", "content"}`` dicts into messages.

    The system prompt comes first; images join the last user message.
    """
    messages: list[Message] = []
    if system:
        messages.append(Message("system", system))
    if isinstance(prompt_or_messages, str):
        messages.append(Message("user", prompt_or_messages))
    else:
        for item in prompt_or_messages:
            try:
                role, content = item["role"], item["content"]
            except (KeyError, TypeError):
                raise InvalidOptionError(
                    'messages must be dicts with "role" and "content"'
                ) from None
            if not isinstance(content, str):
                raise InvalidOptionError("message content must be a string")
            messages.append(Message(str(role), content))
        if not messages or messages[-1].role == "system":
            raise InvalidOptionError("the messages must end with a user message")
    if images:
        encoded = [encode_image(image) for image in images]
        for message in reversed(messages):
            if message.role == "user":
                message.images.extend(encoded)
                break
    return messages


class Binding:
    """Base class of the bindings: one server, one long-lived HTTP client.

    Parameters
    ----------
    host:
        The server's base URL; defaults to the binding's environment variable,
        then its usual local address.
    model:
        The default model; when omitted, the server's first model is used.
    api_key:
        The key, when the server needs one; defaults to the binding's
        environment variable. It is sent as a Bearer header and shown nowhere.
    connect_timeout, read_timeout:
        Seconds to wait for a connection, and for each piece of the answer
        (a stream that stays silent longer is reported as broken).
    max_retries:
        How many times a refused connection, 408, 409, 429 or 5xx is retried
        before the body starts.
    transport:
        An ``httpx`` transport, for tests (``httpx.MockTransport``).
    """

    name: ClassVar[str] = ""
    default_host: ClassVar[str] = ""
    host_env: ClassVar[str | None] = None
    key_env: ClassVar[str | None] = None
    start_hint: ClassVar[str] = "check that the server runs and that the host is right"
    supports_images: ClassVar[bool] = True
    # The common option names this binding can send, mapped to its wire names.
    option_names: ClassVar[Mapping[str, str]] = {}

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
        env_host = os.environ.get(self.host_env) if self.host_env else None
        self.host = self._normalize_host(host or env_host or self.default_host)
        self.model = model or None
        self._api_key = api_key or (os.environ.get(self.key_env) if self.key_env else None) or None
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max_retries
        self._transport = transport
        self._verify = verify
        self._client: httpx.Client | None = None
        self._listing_models = False
        self._sleep = time.sleep  # replaced in tests to keep retries fast

    # -- public API --------------------------------------------------------

    def generate(
        self,
        prompt_or_messages: str | Sequence[Mapping[str, Any]],
        *,
        images: Sequence[ImageInput] | None = None,
        system: str | None = None,
        stream: bool = True,
        model: str | None = None,
        **options: Any,
    ) -> Response:
        """Ask the model for an answer; returns a :class:`~lollms_magics.Response` at once.

        ``prompt_or_messages`` is a prompt string or a list of
        ``{"role": ..., "content": ...}`` chat messages. ``images`` (paths,
        bytes, PIL images or data URLs) go with the last user message.
        ``options`` are the common generation options (``n_predict``,
        ``temperature``, ``top_k``, ``top_p``, ``repeat_penalty``,
        ``repeat_last_n``, ``seed``, ``ctx_size``, ``stop``); an option this
        backend cannot honour is reported with an
        :class:`~lollms_magics.errors.UnsupportedOptionWarning` and listed in
        ``response.ignored_options``.

        The request is sent when the response is first iterated or its
        ``.text`` read. Bad options and unreadable images fail here, before.
        """
        checked = validate_options(options)
        if images and not self.supports_images:
            raise InvalidOptionError(
                f"{self.name} ({self.model or 'its model'}) reads text only and cannot take images; "
                "use a vision model through Ollama, LoLLMs or an OpenAI-compatible server"
            )
        messages = build_messages(prompt_or_messages, system, images)
        self._prepare()  # after validation: bad options and images never reach the wire
        supported = self._option_map()
        ignored = [name for name in checked if name not in supported]
        if ignored:
            warnings.warn(
                f"{self.name} cannot honour {', '.join(ignored)}; "
                f"{'it is' if len(ignored) == 1 else 'they are'} not sent",
                UnsupportedOptionWarning,
                stacklevel=2,
            )
        request = GenerationRequest(messages, model or self.model, checked, stream)
        response = Response(self.name, request.model, checked)
        response.ignored_options = ignored
        response._source = self._generate(request, response)
        return response

    def list_models(self) -> list[ModelInfo]:
        """The models the server offers, with details where it gives them."""
        return self._list_models()

    @property
    def context_size(self) -> int | None:
        """The model's context window in tokens, when the binding knows it without asking."""
        return None

    def close(self) -> None:
        """Close the HTTP client (a later call opens a new one)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Binding:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        key = ", key set" if self._api_key else ""
        return f"<{type(self).__name__} {self.host} model={self.model!r}{key}>"

    # -- for subclasses ----------------------------------------------------

    def _generate(self, request: GenerationRequest, response: Response) -> Iterator[str]:
        raise NotImplementedError

    def _list_models(self) -> list[ModelInfo]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Called by :meth:`generate` once the request is valid, before options are mapped."""

    def _normalize_host(self, host: str) -> str:
        return normalize_host(host)

    def _option_map(self) -> Mapping[str, str]:
        """The common options this binding sends, mapped to their wire names."""
        return self.option_names

    def _wire_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` under their wire names, leaving out the ones not supported."""
        names = self._option_map()
        return {names[k]: v for k, v in options.items() if k in names}

    def _headers(self) -> dict[str, str]:
        if self._api_key:
            return {"Authorization": f"Bearer {self._api_key}"}
        return {}

    def _key_hint(self) -> str:
        if self.key_env:
            return f"set {self.key_env}, or give the key with api_key= / %lollms key {self.name}"
        return "check the server's API key settings"

    @property
    def client(self) -> httpx.Client:
        """The binding's long-lived ``httpx.Client`` (one connection pool per server)."""
        if self._client is None:
            timeout = httpx.Timeout(
                connect=self.connect_timeout, read=self.read_timeout, write=30.0, pool=30.0
            )
            # Remote servers honour the proxy and CA variables (HTTPS_PROXY,
            # SSL_CERT_FILE...) as users expect; a server on this machine never
            # goes through a proxy, and neither does a test transport.
            trust_env = self._transport is None and not _is_loopback(self.host)
            self._client = httpx.Client(
                timeout=timeout, transport=self._transport, verify=self._verify, trust_env=trust_env
            )
        return self._client

    def _url(self, path: str) -> str:
        return self.host + path

    def _open(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """Send a request and return the open response once its status is a success.

        Refused connections and 408/409/429/5xx are retried with backoff
        (honouring ``Retry-After`` up to a cap) before any body is read.
        The caller closes the response.
        """
        url = self._url(path)
        attempt = 0
        while True:
            request = self.client.build_request(method, url, json=body, headers=self._headers())
            try:
                response = self.client.send(request, stream=True)
            except httpx.ConnectError as exc:
                if attempt < self.max_retries:
                    self._sleep(_http.backoff_delay(attempt))
                    attempt += 1
                    continue
                raise ServerUnreachableError(
                    f"cannot reach {self.name} at {self.host} ({_reason(exc)}); {self.start_hint}",
                    binding=self.name,
                    url=url,
                ) from None
            except httpx.TimeoutException:
                raise BindingTimeout(
                    f"{self.name} at {self.host} did not answer in time; "
                    f"raise the timeout or check the server",
                    binding=self.name,
                    url=url,
                ) from None
            except httpx.HTTPError as exc:
                raise ServerUnreachableError(
                    f"request to {self.name} at {self.host} failed ({_reason(exc)}); "
                    f"{self.start_hint}",
                    binding=self.name,
                    url=url,
                ) from None
            if response.status_code < 400:
                return response
            try:
                body_bytes = response.read()
            except httpx.HTTPError:
                body_bytes = b""
            finally:
                response.close()
            error = self._status_error(response, body_bytes, url)
            _, code = _http.error_details(body_bytes)
            if attempt < self.max_retries and _http.should_retry(
                response.status_code, response.headers, code
            ):
                wait = _http.parse_retry_after(response.headers)
                if wait is not None and wait > _http.RETRY_AFTER_CAP:
                    raise error  # the server wants far longer than we should block a cell
                self._sleep(wait if wait else _http.backoff_delay(attempt))
                attempt += 1
                continue
            raise error

    def _status_error(self, response: httpx.Response, body: bytes, url: str) -> BindingError:
        if self._api_key:
            # Some servers and proxies quote the key they refused; never show it.
            body = body.replace(self._api_key.encode("utf-8"), b"<your key>")
        error = _http.status_error(
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

    def _get_json(self, path: str) -> Any:
        """GET ``path`` and return its JSON body."""
        response = self._open("GET", path)
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

    def _default_model(self) -> str | None:
        """The model to use when none was given: the server's first."""
        if self.model is None:
            models = self._list_models()
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
                    "the model may still be loading: raise read_timeout or check the server",
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


def _is_loopback(url: str) -> bool:
    host = httpx.URL(url).host
    return host in ("localhost", "::1") or host.startswith("127.")


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return _http.one_line(text, 160)
