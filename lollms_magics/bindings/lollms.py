"""LoLLMs, both server generations, behind one binding.

* The lollms-webui API (default port 9600), the one the course material uses:
  ``/lollms_generate`` streams raw text with no framing and no end marker
  (so text is read with ``iter_text``, never split into lines, and newlines
  survive); errors come back as HTTP 200 with ``{"status": false, "error"}``
  or a bare ``null``; a stream can stall with no in-band error, which the
  read timeout catches.
* The new LoLLMs server (default port 9642): OpenAI-style ``/v1`` with a
  Bearer key (``LOLLMS_API_KEY``), model ids ``binding/model`` and FastAPI
  ``{"detail": ...}`` errors. It is handled by the OpenAI binding's code.

Which one runs is found once per host and remembered (``GET /v1/models`` is
answered only by the new server, ``GET /list_models`` only by the old one);
when the remembered protocol's endpoint answers 404 (another server took
the port) it is found again, once. ``protocol="webui"`` or ``"v1"`` pins it.

Tools (``tools=``) go to the new server as to any OpenAI-compatible one; a
request with tools to lollms-webui fails at once with one line saying it has
no tool API.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

from ..errors import BindingError, ProtocolError, ServerError, ServerUnreachableError
from ..response import Response
from ..schema import GenerationRequest, Message, ModelInfo
from .base import Probe
from .http import normalize_host
from .openai import OpenAIBinding

__all__ = ["LollmsBinding", "forget_protocols", "remember_protocol"]

WEBUI_HOST = "http://localhost:9600"
SERVER_HOST = "http://localhost:9642"
PROTOCOLS = ("auto", "webui", "v1")

# What lollms-webui's /lollms_generate really hands to the model (read in its
# lollms_generator.py): the streaming path passes these, each as
# ``request.x or config.x``, so a 0 silently becomes the server's own setting;
# the whole-answer path passes only the temperature and n_predict; ``seed`` and
# ``n_threads`` are never passed.
_WEBUI_OPTIONS = {
    name: name
    for name in ("n_predict", "temperature", "top_k", "top_p", "repeat_penalty", "repeat_last_n")
}
_WEBUI_WHOLE_OPTIONS = ("n_predict", "temperature")
_WEBUI_ZERO_IS_DEFAULT = ("temperature", "top_k", "top_p", "repeat_penalty", "repeat_last_n")
# The new server reads only these sampling fields from a chat request.
_V1_OPTIONS = {"n_predict": "max_tokens", "temperature": "temperature"}

# host -> "webui" | "v1", shared by every binding instance of the kernel.
_detected: dict[str, str] = {}

T = TypeVar("T")


def remember_protocol(host: str, protocol: str) -> None:
    """Record which protocol the LoLLMs server at ``host`` speaks, found by another probe."""
    if protocol not in PROTOCOLS[1:]:
        raise ValueError(f"protocol must be 'webui' or 'v1', not {protocol!r}")
    _detected[normalize_host(host)] = protocol


def forget_protocols() -> None:
    """Forget every protocol found so far (the next request finds it again)."""
    _detected.clear()


def transcript(messages: list[Message]) -> str:
    """Messages as the ``!@>role:`` transcript the lollms-webui server expects.

    A single user prompt is sent as it is, as the course's client does.
    """
    if len(messages) == 1 and messages[0].role == "user":
        return messages[0].content
    lines = [f"!@>{m.role}: {m.content}" for m in messages]
    return "\n".join(lines) + "\n!@>assistant:"


def _probe_webui(client: httpx.Client) -> Probe | None:
    try:
        r = client.get(WEBUI_HOST + "/list_models")
        if r.status_code == 200 and isinstance(r.json(), list):
            remember_protocol(WEBUI_HOST, "webui")  # the binding need not probe again
            return Probe(WEBUI_HOST, None, f"a LoLLMs server (lollms-webui) answered at {WEBUI_HOST}")
    except (httpx.HTTPError, ValueError):
        pass
    return None


def _probe_v1(client: httpx.Client, key: str | None) -> Probe | None:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    try:
        r = client.get(SERVER_HOST + "/v1/models", headers=headers)
    except httpx.HTTPError:
        return None
    if r.status_code in (401, 403):
        how = "refuses LOLLMS_API_KEY" if key else "needs a key"
        return Probe(
            SERVER_HOST, None,
            f"a LoLLMs server runs at {SERVER_HOST} but {how}: set LOLLMS_API_KEY "
            "or type one with %lollms key lollms",
            usable=False,
        )
    try:
        ok = r.status_code == 200 and isinstance(r.json().get("data"), list)
    except (ValueError, AttributeError):
        ok = False
    if not ok:
        return None
    remember_protocol(SERVER_HOST, "v1")
    return Probe(SERVER_HOST, None, f"a LoLLMs server answered at {SERVER_HOST}")


def probe_lollms(client: httpx.Client, key: str | None) -> Probe | None:
    """The automatic choice's look for a LoLLMs server on its two default ports (at once)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lollms-probe-v1") as pool:
        v1 = pool.submit(_probe_v1, client, key)
        webui = _probe_webui(client)
        found = v1.result()
    if webui is not None:
        return webui
    return found


class LollmsBinding(OpenAIBinding):
    """A binding for LoLLMs servers, old (lollms-webui, 9600) and new (9642).

    ``host`` defaults to ``LOLLMS_HOST``; without one, port 9600 then 9642 on
    localhost are tried. ``protocol`` is ``"auto"`` (detect once per host),
    ``"webui"`` or ``"v1"``; ``personality`` is the lollms-webui personality
    index (-1: the active one).
    """

    name = "lollms"
    default_host = WEBUI_HOST
    host_env = "LOLLMS_HOST"
    key_env = "LOLLMS_API_KEY"
    start_hint = "start LoLLMs, or point at it with --host / LOLLMS_HOST"
    auto_priority = 10
    include_usage = False

    def __init__(
        self,
        host: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        protocol: str = "auto",
        personality: int = -1,
        **config: Any,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}")
        self._host_given = bool(host or os.environ.get(self.host_env or ""))
        super().__init__(host, model, api_key, **config)
        self._pinned = protocol != "auto"
        self.protocol = protocol
        self.personality = personality

    def _normalize_host(self, host: str) -> str:
        return normalize_host(host)

    @classmethod
    def probe(cls, client: httpx.Client) -> Probe | None:
        """A LoLLMs server on 9600 or 9642 (the new one may need ``LOLLMS_API_KEY``)."""
        if os.environ.get(cls.host_env or ""):
            return None  # a configured host is the user's choice, not the automatic one's
        return probe_lollms(client, cls.env_key())  # stripped: a key read from a file ends in a newline

    # -- which server is it? --------------------------------------------------

    def detect(self) -> str:
        """Find (once per host) which LoLLMs protocol the server speaks: ``"webui"`` or ``"v1"``."""
        if self.protocol != "auto":
            return self.protocol
        candidates = [self.host] if self._host_given else [WEBUI_HOST, SERVER_HOST]
        for host in candidates:
            if host in _detected:
                self.host = host
                self.protocol = _detected[host]
                return self.protocol
        errors: list[BindingError] = []
        for host in candidates:
            try:
                found = self._probe(host)
            except BindingError as exc:
                errors.append(exc)
                continue
            _detected[host] = found
            self.host, self.protocol = host, found
            return found
        if len(candidates) > 1 and all(isinstance(e, ServerUnreachableError) for e in errors):
            raise ServerUnreachableError(
                f"no LoLLMs server answers on {WEBUI_HOST} or {SERVER_HOST}; {self.start_hint}",
                binding=self.name,
            )
        raise errors[0]

    def _redetect(self) -> bool:
        """After a 404 from the remembered protocol: find the protocol again; True if it changed."""
        if self._pinned:
            return False
        before = self.protocol
        _detected.pop(self.host, None)
        self.protocol = "auto"
        self._host_given = True  # stay on this host
        return self.detect() != before

    def _retrying_on_404(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except BindingError as exc:
            if exc.status_code == 404 and self._redetect():
                return action()
            raise

    def _probe(self, host: str) -> str:
        try:
            r = self.client.get(host + "/v1/models", headers=self._headers())
            if r.status_code in (401, 403) or (r.status_code == 200 and _is_model_list(r)):
                return "v1"
            r = self.client.get(host + "/list_models")
            if r.status_code == 200 and isinstance(_json(r), list):
                return "webui"
        except httpx.TransportError as exc:
            raise ServerUnreachableError(
                f"cannot reach lollms at {host} ({type(exc).__name__}); {self.start_hint}",
                binding=self.name,
                url=host,
            ) from None
        raise ProtocolError(
            f"{host} answers, but neither as a lollms-webui nor as a LoLLMs server; "
            "check the host, or pin protocol='webui' or 'v1'",
            binding=self.name,
            url=host,
        )

    def _url(self, path: str) -> str:
        if self.protocol == "v1":
            return self.host + "/v1" + path
        return self.host + path

    def _option_map(self) -> Mapping[str, str]:
        return _V1_OPTIONS if self.protocol == "v1" else _WEBUI_OPTIONS

    def _ignored_options(self, options: Mapping[str, Any], stream: bool) -> list[str]:
        if self.protocol == "v1":
            return super()._ignored_options(options, stream)
        names = _WEBUI_OPTIONS if stream else _WEBUI_WHOLE_OPTIONS
        return [
            name
            for name, value in options.items()
            if name not in names or (value == 0 and name in _WEBUI_ZERO_IS_DEFAULT)
        ]

    def _framing(self) -> str:
        return "sse" if self.protocol == "v1" else "text"

    def _can_call_tools(self) -> bool:
        return self.protocol == "v1"  # the new server is OpenAI-compatible; lollms-webui has no tool API

    def _no_tools(self) -> str:
        return (
            f"lollms-webui at {self.host} has no tool-calling API; tools need the new LoLLMs server "
            "(port 9642), Ollama, an OpenAI-compatible server or the embedded model"
        )

    def _prepare(self) -> None:
        # The first generation finds out which LoLLMs server runs (after the
        # options and images were checked, so bad ones never cause a request).
        self.detect()

    def _list_models(self) -> list[ModelInfo]:
        self.detect()
        return self._retrying_on_404(self._list_models_once)

    def _list_models_once(self) -> list[ModelInfo]:
        if self.protocol == "v1":
            return super()._list_models()
        data = self._get_json("/list_models")
        if not isinstance(data, list):
            raise ProtocolError(
                f"lollms at {self.host}: /list_models did not return a list",
                binding=self.name,
                url=self._url("/list_models"),
            )
        return [ModelInfo(str(name)) for name in data]

    # -- generation -------------------------------------------------------------

    def _send(self, request: GenerationRequest, response: Response) -> httpx.Response:
        return self._retrying_on_404(lambda: super(LollmsBinding, self)._send(request, response))

    def _call(self, request: GenerationRequest, response: Response) -> tuple[str, str, Any]:
        if self.protocol == "v1":
            return super()._call(request, response)
        images = [i.b64 for m in request.messages for i in m.images]
        body: dict[str, Any] = {
            "prompt": transcript(request.messages),
            "model_name": request.model or "",
            "personality": self.personality,
            "stream": request.stream,
        }
        body.update(self._wire_options(request.options))
        if images:
            body["images"] = images
            return "POST", "/lollms_generate_with_images", body
        return "POST", "/lollms_generate", body

    def _opened(self, http: httpx.Response, request: GenerationRequest) -> None:
        if self.protocol == "v1":
            return
        if http.headers.get("content-type", "").startswith("application/json"):
            # The server's way to fail: HTTP 200 and a JSON body instead of text.
            with self._reading(http):
                http.read()
            raise self._webui_error(http)

    def _webui_error(self, http: httpx.Response) -> BindingError:
        data = _json(http)
        where = f"lollms at {self.host}"
        if data is None:
            return ServerError(
                f"{where} has no model loaded; choose a binding and a model in its settings",
                binding=self.name,
                url=str(http.url),
            )
        if isinstance(data, dict) and data.get("status") is False:
            return ServerError(
                f"{where} failed: {data.get('error') or 'no reason given'}",
                binding=self.name,
                url=str(http.url),
            )
        return ProtocolError(
            f"{where} answered with JSON instead of text", binding=self.name, url=str(http.url)
        )

    def tokenize(self, text: str) -> list[int] | None:
        """The server's tokens for ``text``: ``/lollms_tokenize`` (webui) or ``/v1/tokenize`` (new server)."""
        try:
            if self.detect() == "v1":
                body = {"model": self._default_model() or "", "text": text}
                data = self._request_json("POST", "/tokenize", body)
                tokens = data.get("tokens") if isinstance(data, dict) else None
            else:
                tokens = self._request_json("POST", "/lollms_tokenize", {"prompt": text})
        except BindingError:  # an older server without the route, or one that refused
            return None
        return tokens if isinstance(tokens, list) and all(isinstance(t, int) for t in tokens) else None

    def detokenize(self, tokens: list[int]) -> str | None:
        """The text of ``tokens``: ``/lollms_detokenize`` (webui) or ``/v1/detokenize``; None if refused."""
        try:
            if self.detect() == "v1":
                data = self._request_json("POST", "/detokenize", {"model": self._default_model() or "",
                                                                  "tokens": list(tokens)})
                text = data.get("text") if isinstance(data, dict) else None
            else:
                text = self._request_json("POST", "/lollms_detokenize", {"tokens": list(tokens)})
        except BindingError:
            return None
        return text if isinstance(text, str) else None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return ...  # a marker that cannot be mistaken for JSON's null


def _is_model_list(response: httpx.Response) -> bool:
    data = _json(response)
    return isinstance(data, dict) and isinstance(data.get("data"), list)
