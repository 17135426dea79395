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

Which one runs is found once per host and cached (``GET /v1/models`` is
answered only by the new server, ``GET /list_models`` only by the old one);
``protocol="webui"`` or ``protocol="v1"`` pins it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from ..errors import BindingError, ProtocolError, ServerError, ServerUnreachableError
from ..response import Response
from .base import GenerationRequest, Message, ModelInfo, normalize_host
from .openai import OpenAIBinding

__all__ = ["LollmsBinding"]

WEBUI_HOST = "http://localhost:9600"
SERVER_HOST = "http://localhost:9642"
PROTOCOLS = ("auto", "webui", "v1")

_WEBUI_OPTIONS = {
    name: name
    for name in (
        "n_predict", "temperature", "top_k", "top_p", "repeat_penalty", "repeat_last_n", "seed"
    )
}
# The new server reads only these sampling fields from a chat request.
_V1_OPTIONS = {"n_predict": "max_tokens", "temperature": "temperature"}

# host -> "webui" | "v1", shared by every binding instance of the kernel.
_detected: dict[str, str] = {}


def remember_protocol(host: str, protocol: str) -> None:
    """Record which protocol the LoLLMs server at ``host`` speaks, found by another probe."""
    if protocol not in PROTOCOLS[1:]:
        raise ValueError(f"protocol must be 'webui' or 'v1', not {protocol!r}")
    _detected[normalize_host(host)] = protocol


def transcript(messages: list[Message]) -> str:
    """Messages as the ``!@>role:`` transcript the lollms-webui server expects.

    A single user prompt is sent as it is, as the course's client does.
    """
    if len(messages) == 1 and messages[0].role == "user":
        return messages[0].content
    lines = [f"!@>{m.role}: {m.content}" for m in messages]
    return "\n".join(lines) + "\n!@>assistant:"


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
        self.protocol = protocol
        self.personality = personality

    def _normalize_host(self, host: str) -> str:
        return normalize_host(host)

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

    def _prepare(self) -> None:
        # The first generation finds out which LoLLMs server runs (after the
        # options and images were checked, so bad ones never cause a request).
        self.detect()

    def _list_models(self) -> list[ModelInfo]:
        if self.detect() == "v1":
            return super()._list_models()
        data = self._get_json("/list_models")
        if not isinstance(data, list):
            raise ProtocolError(
                f"lollms at {self.host}: /list_models did not return a list",
                binding=self.name,
                url=self._url("/list_models"),
            )
        return [ModelInfo(str(name)) for name in data]

    # -- lollms-webui generation ----------------------------------------------

    def _generate(self, request: GenerationRequest, response: Response) -> Iterator[str]:
        if self.protocol == "v1":
            return super()._generate(request, response)
        return self._generate_webui(request, response)

    def _generate_webui(self, request: GenerationRequest, response: Response) -> Iterator[str]:
        images = [i.b64 for m in request.messages for i in m.images]
        body: dict[str, Any] = {
            "prompt": transcript(request.messages),
            "model_name": request.model or "",
            "personality": self.personality,
            "stream": request.stream,
        }
        body.update(self._wire_options(request.options))
        path = "/lollms_generate"
        if images:
            body["images"] = images
            path = "/lollms_generate_with_images"
        http = self._open("POST", path, body)
        try:
            if http.headers.get("content-type", "").startswith("application/json"):
                # The server's way to fail: HTTP 200 and a JSON body instead of text.
                with self._reading(http):
                    http.read()
                raise self._webui_error(http)
            with self._reading(http, answer=response):
                if not request.stream:
                    yield from http.iter_text()
                    return
                # The server holds a "!" back in case "@>" (a role change)
                # follows, and may release it as the very last piece; its own
                # client strips it. A "!" ending a piece waits for the next one.
                held = False
                try:
                    for piece in http.iter_text():
                        if held:
                            piece = "!" + piece
                        held = piece.endswith("!")
                        if held:
                            piece = piece[:-1]
                        if piece:
                            yield piece
                except httpx.HTTPError:
                    if held:  # the connection broke: that "!" was received text
                        yield "!"
                    raise
        finally:
            http.close()

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


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return ...  # a marker that cannot be mistaken for JSON's null


def _is_model_list(response: httpx.Response) -> bool:
    data = _json(response)
    return isinstance(data, dict) and isinstance(data.get("data"), list)
