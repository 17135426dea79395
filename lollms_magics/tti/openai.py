"""OpenAI's image API and the servers that copy it: ``POST /v1/images/generations``.

Pictures are asked as base64 (``response_format: "b64_json"``) so they come
in the answer itself; the ``gpt-image`` models refuse that field (400
``unknown_parameter``) and always answer base64, so it is left out for them.
A server that answers with ``url`` items anyway has them fetched.

OpenAI's own models take only some sizes (``dall-e-2``: 256, 512 or 1024
square; ``dall-e-3``: 1024x1024, 1792x1024, 1024x1792, one picture at a time;
``gpt-image-1``: 1024x1024, 1536x1024, 1024x1536); those are checked before
anything is sent. Other model names (a compatible server's) take any size.
The API has no negative prompt, seed, steps or guidance scale: asking for
them gives an :class:`~lollms_magics.errors.UnsupportedOptionWarning`. A
prompt the safety system refuses (``content_policy_violation``) is a
:class:`~lollms_magics.errors.BadRequestError` saying so.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

import httpx

from ..bindings.base import Probe
from ..bindings.http import normalize_host
from ..errors import BadRequestError, BindingError, InvalidOptionError, ProtocolError
from ..schema import ModelInfo
from ..transport import statuses
from .base import ImageBinding, ImageRequest, ImageResult, Progress

__all__ = ["SIZES", "OpenAIImageBinding", "images_body", "read_images"]

SIZES: dict[str, tuple[str, ...]] = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "gpt-image-1": ("1024x1024", "1536x1024", "1024x1536"),
}
OPENAI_IMAGE_MODEL = "dall-e-3"


def images_body(request: ImageRequest, model: str | None) -> dict[str, Any]:
    """The JSON of ``/images/generations`` for ``request``."""
    body: dict[str, Any] = {
        "prompt": request.prompt,
        "n": request.n,
        "size": f"{request.width}x{request.height}",
    }
    if model:
        body["model"] = model
    if not (model or "").startswith("gpt-image"):
        body["response_format"] = "b64_json"
    body.update(request.extra)
    return body


def read_images(binding: ImageBinding, data: Any) -> tuple[list[bytes], list[str]]:
    """The pictures of an ``/images/generations`` answer, and the prompts the server rewrote."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ProtocolError(
            f"{binding.name} at {binding.host}: the answer has no 'data' list of images",
            binding=binding.name,
            url=binding.host,
        )
    images, revised = [], []
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("b64_json"):
            try:
                images.append(base64.b64decode(item["b64_json"], validate=True))
            except (binascii.Error, ValueError):
                raise ProtocolError(
                    f"{binding.name} at {binding.host} sent an image that is not valid base64",
                    binding=binding.name,
                    url=binding.host,
                ) from None
        elif item.get("url"):
            images.append(_download(binding, str(item["url"])))
        if item.get("revised_prompt"):
            revised.append(str(item["revised_prompt"]))
    return images, revised


def _download(binding: ImageBinding, url: str) -> bytes:
    try:
        r = binding.client.get(url)
    except httpx.HTTPError as exc:
        raise ProtocolError(
            f"{binding.name}: cannot fetch the image at {httpx.URL(url).copy_with(query=None)} ({exc})",
            binding=binding.name,
            url=binding.host,
        ) from None
    if r.status_code >= 400:
        raise ProtocolError(
            f"{binding.name}: the image URL it gave answers {r.status_code}", binding=binding.name, url=url
        )
    return r.content


class OpenAIImageBinding(ImageBinding):
    """Pictures from OpenAI (``dall-e-2``, ``dall-e-3``, ``gpt-image-1``) or a compatible server.

    The host is the API base URL (``OPENAI_BASE_URL``, default
    ``https://api.openai.com/v1``), the key ``OPENAI_API_KEY``. Without a
    model, OpenAI's ``dall-e-3`` is used; a compatible server uses its own
    default.
    """

    name = "openai"
    default_host = "https://api.openai.com/v1"
    host_env = "OPENAI_BASE_URL"
    key_env = "OPENAI_API_KEY"
    start_hint = "check the URL (OPENAI_BASE_URL or --host) and that the server runs"
    supported = frozenset({"n"})
    image_priority = 40

    def _normalize_host(self, host: str) -> str:
        host = normalize_host(host)
        if not httpx.URL(host).path.strip("/"):
            host += "/v1"
        return host

    @classmethod
    def probe_image(cls, client: httpx.Client) -> Probe | None:
        """OpenAI is chosen only when configured: its pictures cost money."""
        base_url = os.environ.get("OPENAI_BASE_URL")
        if base_url:
            return Probe(base_url, None, f"OPENAI_BASE_URL is set, using {base_url}")
        if cls.env_key():  # stripped: a variable holding only a line end is not a key
            return Probe(
                None, OPENAI_IMAGE_MODEL, f"OPENAI_API_KEY is set, using OpenAI's {OPENAI_IMAGE_MODEL}"
            )
        return None

    def _is_openai(self) -> bool:
        return httpx.URL(self.host).host.endswith("openai.com")

    def _default_size(self) -> tuple[int, int]:
        return (1024, 1024) if self._is_openai() or (self.model or "") in SIZES else (512, 512)

    def _list_models(self) -> list[ModelInfo]:
        data = self._get_json("/models")
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ProtocolError(
                f"{self._where()}: /models did not return a model list", binding=self.name, url=self.host
            )
        names = [str(m["id"]) for m in items if isinstance(m, dict) and "id" in m]
        if self._is_openai():
            names = [n for n in names if n.startswith(("dall-e", "gpt-image"))]
        return [ModelInfo(n) for n in names]

    def _check(self, request: ImageRequest, model: str | None) -> None:
        sizes = SIZES.get(model or "")
        size = f"{request.width}x{request.height}"
        if sizes is not None and size not in sizes:
            raise InvalidOptionError(f"{model} makes only {', '.join(sizes)} pictures, not {size}")
        if model == "dall-e-3" and request.n != 1:
            raise InvalidOptionError("dall-e-3 makes one picture per request: use -n 1")

    def _make(self, request: ImageRequest, progress: Progress) -> ImageResult:
        model = request.model or (OPENAI_IMAGE_MODEL if self._is_openai() else None)
        self._check(request, model)
        body = images_body(request, model)
        data = self._run_blocking(
            lambda: self._request_json("POST", "/images/generations", body), lambda: None
        )
        images, revised = read_images(self, data)
        info = {"revised_prompt": revised[0]} if revised else {}
        return ImageResult(
            images, request.prompt, width=request.width, height=request.height, model=model, info=info
        )

    def _status_error(self, response: httpx.Response, body: bytes, url: str) -> BindingError:
        _, code = statuses.error_details(body)
        if response.status_code == 400 and code == "content_policy_violation":
            return BadRequestError(
                f"{self._where()} refused the prompt: its safety system rejected it "
                "(content_policy_violation); rephrase the prompt",
                binding=self.name,
                url=url,
                status_code=400,
            )
        return super()._status_error(response, body, url)
