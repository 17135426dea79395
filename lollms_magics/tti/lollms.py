"""LoLLMs pictures, from both server generations, found as the text binding finds them.

* lollms-webui (9600), ``lollms/server/endpoints/lollms_tti.py``:
  ``POST /generate_image`` ``{"prompt", "negative_prompt", "width", "height"}`` →
  ``{"image": <base64 JPEG>}`` (other fields are ignored, so seed, steps and
  cfg cannot be honoured; ``n`` pictures are ``n`` requests).
  ``/list_tti_services``, ``/get_active_tti_settings`` and
  ``/set_active_tti_settings`` need a ``client_id`` that the server finds
  among its live Socket.IO sessions (``lollms.security.check_access``),
  else ``400 "Not accessible without id"``: the id of an open LoLLMs web UI
  tab, given as ``client_id=`` or ``LOLLMS_CLIENT_ID``. The id is sent only
  to these three calls and never shown.
* the new LoLLMs server (9642), ``backend/routers/services/openai_v1.py``:
  OpenAI's ``POST /v1/images/generations`` with a Bearer key, model ids
  ``tti_alias/model``; ``GET /lollms/v1/tti/models`` lists them.

Which one runs is detected once per host by the text binding
(:meth:`lollms_magics.bindings.lollms.LollmsBinding.detect`), whose memory
both share.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

import httpx

from ..bindings.base import Probe
from ..bindings.http import normalize_host
from ..bindings.lollms import LollmsBinding, remember_protocol
from ..errors import AuthenticationError, BindingError, ProtocolError, ServerError, UnknownModelError
from ..schema import ModelInfo
from ..secret_fields import clean_key
from .base import ImageBinding, ImageRequest, ImageResult, Progress
from .openai import images_body, read_images

__all__ = ["LollmsImageBinding"]

CLIENT_ID_ENV = "LOLLMS_CLIENT_ID"


def _probe_one(client: httpx.Client, host: str, key: str) -> Probe | None:
    try:
        r = client.get(host + "/list_models")
        if r.status_code == 200 and isinstance(r.json(), list):
            remember_protocol(host, "webui")
            return Probe(host, None, f"a LoLLMs server (lollms-webui) answered at {host}")
        r = client.get(
            host + "/lollms/v1/tti/models", headers={"Authorization": f"Bearer {key}"} if key else None
        )
        data = r.json()
    except (httpx.HTTPError, ValueError):
        return None
    if r.status_code in (401, 403):
        return Probe(
            host, None, f"a LoLLMs server runs at {host} but needs a key: set LOLLMS_API_KEY", usable=False
        )
    items = data.get("data") if isinstance(data, dict) else None
    if r.status_code != 200 or not isinstance(items, list):
        return None
    remember_protocol(host, "v1")
    if not items:
        return Probe(host, None, f"the LoLLMs server at {host} has no image binding configured", usable=False)
    return Probe(host, None, f"a LoLLMs server with images answered at {host}")


class LollmsImageBinding(ImageBinding):
    """Pictures from a LoLLMs server, old (lollms-webui, 9600) or new (9642)."""

    name = "lollms"
    default_host = "http://localhost:9600"
    host_env = "LOLLMS_HOST"
    key_env = "LOLLMS_API_KEY"
    start_hint = "start LoLLMs, or point at it with --host / LOLLMS_HOST"
    image_priority = 10
    probe_hosts = ("http://localhost:9600", "http://localhost:9642")

    def __init__(
        self,
        host: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        client_id: str | None = None,
        protocol: str = "auto",
        **config: Any,
    ) -> None:
        super().__init__(host, model, api_key, **config)
        self._client_id = (
            clean_key(client_id, "client_id") or clean_key(os.environ.get(CLIENT_ID_ENV), CLIENT_ID_ENV)
        )
        finder_config = {k: v for k, v in config.items() if k in ("transport", "verify", "connect_timeout")}
        # The text binding knows how to tell the two servers apart, and remembers it per host.
        self._finder = LollmsBinding(host, None, api_key, protocol=protocol, **finder_config)

    @classmethod
    def probe_image(cls, client: httpx.Client) -> Probe | None:
        """lollms-webui on 9600 or the new server on 9642 (or ``LOLLMS_HOST``) with an image service."""
        env = os.environ.get(cls.host_env or "")
        hosts = [normalize_host(env)] if env else list(cls.probe_hosts)
        key = cls.env_key() or ""  # stripped: a key read from a file ends in a newline
        for host in hosts:
            found = _probe_one(client, host, key)
            if found is not None:
                return found
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host} model={self.model!r}>"

    @property
    def protocol(self) -> str:
        """``"webui"`` or ``"v1"``, detected on first need."""
        found = self._finder.detect()
        self.host = self._finder.host
        return found

    def _supported(self) -> frozenset[str]:
        return frozenset({"n"}) if self.protocol == "v1" else frozenset({"negative_prompt", "n"})

    def _default_size(self) -> tuple[int, int]:
        return (1024, 1024) if self.protocol == "v1" else (512, 512)

    # -- services, settings, models -------------------------------------------

    def _needs_id(self, what: str) -> dict[str, Any]:
        if self.protocol == "v1":
            raise self._cannot(what)
        if not self._client_id:
            raise AuthenticationError(
                f"{self._where()} needs a client_id to {what}: give the id of an open LoLLMs web UI "
                f"session with client_id= or {CLIENT_ID_ENV}",
                binding=self.name,
                url=self.host,
            )
        return {"client_id": self._client_id}

    def list_services(self) -> list[dict[str, Any]]:
        """The image services the server can use (``[{"name", "caption", "help"}]``)."""
        if self.protocol == "v1":
            seen: dict[str, dict[str, Any]] = {}
            for m in self._list_models():
                alias = str(m.details.get("binding") or m.name.split("/", 1)[0])
                seen.setdefault(alias, {"name": alias, "caption": alias, "help": ""})
            return list(seen.values())
        data = self._request_json("POST", "/list_tti_services", self._needs_id("list image services"))
        if not isinstance(data, list):
            raise ProtocolError(
                f"{self._where()}: the services are not a list", binding=self.name, url=self.host
            )
        return data

    def get_settings(self) -> Any:
        """The active service's settings: a list of ``{"name", "type", "value", ...}`` entries."""
        return self._request_json("POST", "/get_active_tti_settings", self._needs_id("show image settings"))

    def set_settings(self, settings: Any = None, **values: Any) -> bool:
        """Send a whole settings list, or change entries by name (``steps=8``); True when applied."""
        ident = self._needs_id("change image settings")
        if settings is None or values:
            current = settings if settings is not None else self.get_settings()
            if not isinstance(current, list):
                raise ServerError(
                    f"{self._where()} has no active image service to configure",
                    binding=self.name,
                    url=self.host,
                )
            settings = [dict(entry) for entry in current]
            names = {entry.get("name") for entry in settings}
            unknown = sorted(set(values) - names)
            if unknown:
                raise UnknownModelError(
                    f"{self._where()}: the image service has no setting {', '.join(unknown)}; "
                    f"it has {', '.join(str(n) for n in names)}",
                    binding=self.name,
                    url=self.host,
                )
            for entry in settings:
                if entry.get("name") in values:
                    entry["value"] = values[entry["name"]]
        answer = self._request_json("POST", "/set_active_tti_settings", {**ident, "settings": settings})
        if isinstance(answer, dict) and answer.get("error"):
            raise ServerError(
                f"{self._where()} refused the settings: {answer['error']}", binding=self.name, url=self.host
            )
        return bool(isinstance(answer, dict) and answer.get("status"))

    def _list_models(self) -> list[ModelInfo]:
        if self.protocol == "webui":
            settings = self.get_settings() if self._client_id else None
            for entry in settings if isinstance(settings, list) else []:
                if entry.get("name") == "model":
                    return [ModelInfo(str(o)) for o in entry.get("options") or [entry.get("value")]]
            raise self._cannot("list image models without a client_id (its settings hold them)")
        data = self._get_json("/lollms/v1/tti/models")
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ProtocolError(
                f"{self._where()}: tti/models is not a model list", binding=self.name, url=self.host
            )
        return [ModelInfo(str(m["id"]), m) for m in items if isinstance(m, dict) and "id" in m]

    # -- pictures ------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.host + path

    def _make(self, request: ImageRequest, progress: Progress) -> ImageResult:
        if self.protocol == "v1":
            return self._make_v1(request)
        body = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "width": request.width,
            "height": request.height,
        }
        images = []
        for _ in range(request.n):
            data = self._run_blocking(
                lambda: self._request_json("POST", "/generate_image", body), lambda: None
            )
            if not isinstance(data, dict) or not isinstance(data.get("image"), str):
                raise ProtocolError(
                    f"{self._where()}: generate_image answered without an image",
                    binding=self.name,
                    url=self.host,
                )
            try:
                images.append(base64.b64decode(data["image"], validate=True))
            except (binascii.Error, ValueError):
                raise ProtocolError(
                    f"{self._where()} sent an image that is not valid base64",
                    binding=self.name,
                    url=self.host,
                ) from None
        return ImageResult(images, request.prompt, width=request.width, height=request.height)

    def _make_v1(self, request: ImageRequest) -> ImageResult:
        if request.model is not None:
            available = [m.name for m in self._list_models()]
            if request.model not in available:
                raise UnknownModelError(
                    f"{self._where()} has no image model {request.model!r}; "
                    f"available: {', '.join(available)}",
                    available=available,
                    binding=self.name,
                    url=self.host,
                )
        body = images_body(request, request.model)
        data = self._run_blocking(
            lambda: self._request_json("POST", "/v1/images/generations", body), lambda: None
        )
        images, _ = read_images(self, data)
        return ImageResult(
            images, request.prompt, width=request.width, height=request.height, model=request.model
        )

    def _status_error(self, response: Any, body: bytes, url: str) -> BindingError:
        if response.status_code == 400 and b"Not accessible without id" in body:
            return AuthenticationError(
                f"{self._where()} does not know this client_id (400: Not accessible without id): give the "
                f"id of an open LoLLMs web UI session with client_id= or {CLIENT_ID_ENV}",
                binding=self.name,
                url=url,
                status_code=400,
            )
        if response.status_code == 500 and b"Image generation failed" in body:
            return ServerError(
                f"{self._where()} could not make the picture (500: Image generation failed); is an image "
                "service chosen and working in the LoLLMs settings?",
                binding=self.name,
                url=url,
                status_code=500,
            )
        error: BindingError = super()._status_error(response, body, url)
        return error

    def close(self) -> None:
        """Close the HTTP clients."""
        self._finder.close()
        super().close()
