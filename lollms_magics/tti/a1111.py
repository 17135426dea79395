"""AUTOMATIC1111's web UI API (also Forge and SD.Next): ``/sdapi/v1``, port 7860.

``POST /sdapi/v1/txt2img`` blocks until the pictures are made, so it runs in
a worker thread while ``GET /sdapi/v1/progress`` is polled for the progress
bar; an interrupt posts ``/sdapi/v1/interrupt``, which stops the sampler at
its next step. The answer's ``info`` is a JSON string holding the seeds
really used; with several pictures the web UI puts a grid first, which
``index_of_first_image`` tells to skip.

Checked against AUTOMATIC1111/stable-diffusion-webui ``modules/api/api.py``:

* the API exists only when the UI was started with ``--api``: without it every
  ``/sdapi`` path answers ``404 {"detail": "Not Found"}``, reported as such;
* errors are ``{"error": <class>, "detail", "body", "errors"}``, read here;
* ``--api-auth user:pass`` asks for HTTP Basic: the key is ``user:password``
  (``A1111_API_AUTH``);
* a checkpoint unknown to ``override_settings`` is *not* an error there (the
  web UI loads a fallback), so a model is checked against ``/sdapi/v1/sd-models``
  before the job is sent;
* pictures are ``(width // 8) * 8`` wide: other sizes give a warning.
"""

from __future__ import annotations

import base64
import binascii
import json
import warnings
from typing import Any

import httpx

from ..bindings.base import Probe
from ..bindings.http import normalize_host
from ..errors import (
    BadRequestError,
    BindingError,
    BindingTimeout,
    ProtocolError,
    UnknownModelError,
    UnsupportedOptionWarning,
)
from ..schema import ModelInfo
from .base import ImageBinding, ImageRequest, ImageResult, Progress

__all__ = ["A1111Binding"]


class A1111Binding(ImageBinding):
    """Pictures from an AUTOMATIC1111, Forge or SD.Next web UI started with ``--api``.

    ``model`` is a checkpoint (title, file name, model name or hash, as
    ``/sdapi/v1/sd-models`` lists them); without one the web UI's current
    checkpoint is used. ``sampler_name``, ``scheduler`` and any other
    ``txt2img`` field may be passed as extra arguments.
    """

    name = "a1111"
    default_host = "http://127.0.0.1:7860"
    host_env = "A1111_HOST"
    key_env = "A1111_API_AUTH"
    start_hint = "start the web UI with --api (./webui.sh --api), or point at it with --host / A1111_HOST"
    reports_progress = True
    image_priority = 20
    probe_hosts = ("http://127.0.0.1:7860",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._checkpoints: list[ModelInfo] | None = None

    def _normalize_host(self, host: str) -> str:
        return normalize_host(host, 7860)

    @classmethod
    def probe_image(cls, client: httpx.Client) -> Probe | None:
        """A web UI on 7860 (or ``A1111_HOST``) whose API answers."""
        host = normalize_host(cls._probe_host(), 7860)
        try:
            r = client.get(host + "/sdapi/v1/sd-models")
            data = r.json()
        except (httpx.HTTPError, ValueError):
            return None
        if r.status_code == 200 and isinstance(data, list):
            return Probe(host, None, f"AUTOMATIC1111 answered at {host}")
        if r.status_code == 404 and data == {"detail": "Not Found"}:
            return Probe(
                host, None, f"a web UI runs at {host} without its API: restart it with --api", usable=False
            )
        if r.status_code == 401:
            return Probe(
                host,
                None,
                f"AUTOMATIC1111 at {host} wants --api-auth credentials: set A1111_API_AUTH=user:password",
                usable=False,
            )
        return None

    def _headers(self) -> dict[str, str]:
        if self._api_key and ":" in self._api_key:  # --api-auth user:password
            token = base64.b64encode(self._api_key.encode("utf-8")).decode("ascii")
            return {"Authorization": f"Basic {token}"}
        return {}

    def _key_hint(self) -> str:
        return "give the web UI's --api-auth credentials as user:password (A1111_API_AUTH)"

    # -- models and settings ---------------------------------------------------

    def _list_models(self) -> list[ModelInfo]:
        data = self._get_json("/sdapi/v1/sd-models")
        if not isinstance(data, list):
            raise ProtocolError(f"{self._where()}: sd-models is not a list", binding=self.name, url=self.host)
        self._checkpoints = [
            ModelInfo(str(m["title"]), {k: v for k, v in m.items() if k != "title"})
            for m in data
            if isinstance(m, dict) and "title" in m
        ]
        return self._checkpoints

    def _checkpoint(self, wanted: str) -> str:
        """The title of checkpoint ``wanted`` (any of its names); UnknownModelError if none."""
        models = self._checkpoints if self._checkpoints is not None else self._list_models()
        for m in models:
            names = {
                m.name,
                str(m.details.get("model_name")),
                str(m.details.get("hash")),
                str(m.details.get("filename", "")).rsplit("/", 1)[-1],
            }
            if wanted in names:
                return m.name
        shown = ", ".join(m.name for m in models[:12]) or "none"
        raise UnknownModelError(
            f"{self._where()} has no checkpoint {wanted!r}; available: {shown}",
            available=[m.name for m in models],
            binding=self.name,
            url=self.host,
        )

    def get_settings(self) -> dict[str, Any]:
        """The web UI's options (``GET /sdapi/v1/options``)."""
        data = self._get_json("/sdapi/v1/options")
        if not isinstance(data, dict):
            raise ProtocolError(
                f"{self._where()}: options is not an object", binding=self.name, url=self.host
            )
        return data

    def set_settings(self, settings: Any = None, **values: Any) -> bool:
        """Change options (``sd_model_checkpoint="..."`` switches the checkpoint, and waits for it)."""
        changes = {**(settings or {}), **values}
        if "sd_model_checkpoint" in changes:
            changes["sd_model_checkpoint"] = self._checkpoint(str(changes["sd_model_checkpoint"]))
        self._request_json("POST", "/sdapi/v1/options", changes)
        return True

    def setting_choices(self) -> dict[str, list[str]]:
        """Checkpoints (``/sdapi/v1/sd-models``), and the samplers and schedulers a picture may ask for.

        ``sampler_name`` and ``scheduler`` are not options but fields of each
        ``txt2img`` request. A web UI too old to list schedulers (the route
        answers 404) simply offers no choice for it.
        """
        choices = {"sd_model_checkpoint": [m.name for m in self._list_models()]}
        for field, path in (("sampler_name", "/sdapi/v1/samplers"), ("scheduler", "/sdapi/v1/schedulers")):
            try:
                data = self._get_json(path)
            except (ProtocolError, BadRequestError):
                continue
            names = [str(i["name"]) for i in data if isinstance(i, dict) and "name" in i] if isinstance(
                data, list) else []
            if names:
                choices[field] = names
        return choices

    # -- pictures ------------------------------------------------------------------

    def _make(self, request: ImageRequest, progress: Progress) -> ImageResult:
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "width": request.width,
            "height": request.height,
            "seed": -1 if request.seed is None else request.seed,
            "batch_size": request.n,
            "n_iter": 1,
            "send_images": True,
            "save_images": False,
        }
        if request.steps is not None:
            body["steps"] = request.steps
        if request.cfg_scale is not None:
            body["cfg_scale"] = request.cfg_scale
        model = self._checkpoint(request.model) if request.model else None
        if model:
            body["override_settings"] = {"sd_model_checkpoint": model}
            body["override_settings_restore_afterwards"] = True
        body.update(request.extra)
        if request.width % 8 or request.height % 8:
            warnings.warn(
                f"a1111 makes sizes in multiples of 8: {request.width}x{request.height} becomes "
                f"{request.width // 8 * 8}x{request.height // 8 * 8}",
                UnsupportedOptionWarning,
                stacklevel=4,
            )
        data = self._run_blocking(
            lambda: self._request_json("POST", "/sdapi/v1/txt2img", body), lambda: self._tick(progress), "job"
        )
        return self._read(data, request, model)

    def _tick(self, progress: Progress) -> None:
        try:
            r = self.client.get(
                self._url("/sdapi/v1/progress"),
                params={"skip_current_image": "true"},
                headers=self._headers(),
                timeout=5.0,
            )
            data = r.json()
        except (httpx.HTTPError, ValueError):
            return  # a missed progress report is no reason to fail the picture
        state = data.get("state") if isinstance(data, dict) else None
        if isinstance(state, dict) and state.get("job_count"):
            progress(min(max(float(data.get("progress") or 0.0), 0.0), 1.0))

    def _cancel(self, job: Any) -> None:
        try:
            self.client.post(self._url("/sdapi/v1/interrupt"), headers=self._headers(), timeout=5.0)
        except httpx.HTTPError:
            pass

    def _read(self, data: Any, request: ImageRequest, model: str | None) -> ImageResult:
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise ProtocolError(
                f"{self._where()}: txt2img answered without 'images'", binding=self.name, url=self.host
            )
        try:
            info = json.loads(data.get("info") or "{}")
        except (TypeError, ValueError):
            info = {}
        first = info.get("index_of_first_image", 0) if isinstance(info, dict) else 0
        try:
            images = [
                base64.b64decode(b, validate=True) for b in data["images"][first:] if isinstance(b, str)
            ]
        except (binascii.Error, ValueError):
            raise ProtocolError(
                f"{self._where()} sent an image that is not valid base64", binding=self.name, url=self.host
            ) from None
        seeds = [int(s) for s in info.get("all_seeds", []) if isinstance(s, int)] if info else []
        seed = info.get("seed") if isinstance(info.get("seed"), int) else request.seed
        kept = {
            k: info[k]
            for k in ("sampler_name", "sd_model_name", "sd_model_hash", "job_timestamp")
            if k in info
        }
        return ImageResult(
            images,
            request.prompt,
            width=request.width,
            height=request.height,
            seed=seed,
            seeds=seeds,
            steps=info.get("steps", request.steps),
            cfg_scale=info.get("cfg_scale", request.cfg_scale),
            model=model or info.get("sd_model_name"),
            info=kept,
        )

    # -- errors in the web UI's shape --------------------------------------------

    def _status_error(self, response: httpx.Response, body: bytes, url: str) -> BindingError:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        path = httpx.URL(url).path
        if response.status_code == 404 and data == {"detail": "Not Found"} and path.startswith("/sdapi/"):
            return ProtocolError(
                f"{self._where()} has no API ({path} answers 404): start the web UI with --api",
                binding=self.name,
                url=url,
                status_code=404,
            )
        if isinstance(data, dict) and isinstance(data.get("error"), str) and "errors" in data:
            detail = data.get("detail") or data.get("errors") or data["error"]
            body = json.dumps({"detail": detail if isinstance(detail, str) else str(detail)}).encode()
        return super()._status_error(response, body, url)

    def _open(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            return super()._open(method, path, body)
        except BindingTimeout as exc:
            raise BindingTimeout(
                f"{self._where()} did not finish within {self.read_timeout:g} s; the web UI may still be "
                "busy: raise the timeout (--timeout, or read_timeout=)",
                binding=self.name,
                url=exc.url,
            ) from None
