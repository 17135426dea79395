"""ComfyUI (port 8188): a text-to-image workflow queued, followed, and its pictures fetched.

The workflow is an API-format graph (``{"<node id>": {"class_type", "inputs"}}``,
what ComfyUI's *Save (API Format)* writes): the one shipped with the package
(``workflows/txt2img.json``), or the user's own (``workflow=`` a path, a JSON
string or a dict). The request is filled in: ``{prompt}`` and
``{negative_prompt}`` placeholders in any text input, else the texts the
sampler's ``positive``/``negative`` inputs lead to; the latent's width,
height and batch size; the sampler's seed, steps and cfg; the checkpoint.
A seed is always chosen before sending, so the one used is known.

Then (comfyanonymous/ComfyUI ``server.py``): ``POST /prompt`` queues it (a
400 holds ``node_errors``, reported per node; an unknown checkpoint is an
:class:`~lollms_magics.errors.UnknownModelError`), ``GET /history/{id}`` stays
``{}`` until the job is done, the ``/ws`` event feed tells how far the sampler
is (:mod:`lollms_magics.tti.comfyui_ws`; without it, a waiting indicator), and
``GET /view`` serves each picture. An interrupt posts ``/interrupt`` with
the prompt id and removes it from the queue (``POST /queue {"delete"}``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import time
import uuid
from importlib import resources
from typing import Any

import httpx

from ..bindings.base import Probe
from ..bindings.http import normalize_host
from ..errors import (
    BadRequestError,
    BindingError,
    BindingTimeout,
    InvalidOptionError,
    ProtocolError,
    ServerError,
    UnknownModelError,
)
from ..schema import ModelInfo
from .base import ImageBinding, ImageRequest, ImageResult, Progress
from .comfyui_ws import ProgressFeed

__all__ = ["ComfyUIBinding", "default_workflow", "fill_workflow", "load_workflow"]

_SAMPLERS = ("KSampler", "KSamplerAdvanced")
_LATENTS = ("EmptyLatentImage", "EmptySD3LatentImage")
_PLACEHOLDER = re.compile(r"\{(negative_prompt|prompt)\}")


def default_workflow() -> dict[str, Any]:
    """The text-to-image workflow shipped with the package (a fresh copy)."""
    text = resources.files("lollms_magics.tti").joinpath("workflows/txt2img.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def load_workflow(workflow: Any) -> dict[str, Any]:
    """An API-format workflow from a dict, a JSON string or a path to a JSON file."""
    if isinstance(workflow, (str, os.PathLike)) and not str(workflow).lstrip().startswith("{"):
        try:
            with open(os.fspath(workflow), encoding="utf-8") as f:
                workflow = f.read()
        except OSError as exc:
            raise InvalidOptionError(f"cannot read the workflow {workflow}: {exc.strerror}") from None
    if isinstance(workflow, str):
        try:
            workflow = json.loads(workflow)
        except ValueError as exc:
            raise InvalidOptionError(f"the workflow is not JSON ({exc})") from None
    if isinstance(workflow, dict) and isinstance(workflow.get("nodes"), list):
        raise InvalidOptionError(
            "this workflow is in ComfyUI's UI format; export it with 'Save (API Format)'"
        )
    if (
        not isinstance(workflow, dict)
        or not workflow
        or not all(isinstance(n, dict) and "class_type" in n for n in workflow.values())
    ):
        raise InvalidOptionError(
            "a ComfyUI workflow must map node ids to {'class_type', 'inputs'} (API format)"
        )
    return copy.deepcopy(workflow)


def _nodes(graph: dict[str, Any], classes: tuple[str, ...]) -> list[dict[str, Any]]:
    return [n for n in graph.values() if n.get("class_type") in classes]


def _linked(graph: dict[str, Any], value: Any) -> dict[str, Any] | None:
    return graph.get(str(value[0])) if isinstance(value, list) and len(value) == 2 else None


def fill_workflow(
    graph: dict[str, Any], request: ImageRequest, seed: int, ckpt: str | None
) -> dict[str, Any]:
    """``graph`` with the request's prompt, size, seed, steps, cfg and checkpoint filled in."""
    graph = copy.deepcopy(graph)
    values = {"prompt": request.prompt, "negative_prompt": request.negative_prompt}
    templated = set()  # nodes whose text held a placeholder: they are filled already
    for node_id, node in graph.items():
        for name, value in (node.get("inputs") or {}).items():
            if isinstance(value, str) and _PLACEHOLDER.search(value):
                node["inputs"][name] = _PLACEHOLDER.sub(lambda m: values[m.group(1)], value)
                templated.add(node_id)
    for sampler in _nodes(graph, _SAMPLERS):
        inputs = sampler.setdefault("inputs", {})
        for field, text in (("positive", request.prompt), ("negative", request.negative_prompt)):
            link = inputs.get(field)
            target = _linked(graph, link)
            if (
                target is not None
                and str(link[0]) not in templated
                and isinstance(target["inputs"].get("text"), str)
            ):
                target["inputs"]["text"] = text
        inputs["noise_seed" if sampler["class_type"] == "KSamplerAdvanced" else "seed"] = seed
        if request.steps is not None:
            inputs["steps"] = request.steps
        if request.cfg_scale is not None:
            inputs["cfg"] = request.cfg_scale
    for latent in _nodes(graph, _LATENTS):
        latent["inputs"].update(width=request.width, height=request.height, batch_size=request.n)
    if ckpt:
        for loader in _nodes(graph, ("CheckpointLoaderSimple",)):
            loader["inputs"]["ckpt_name"] = ckpt
    return graph


class ComfyUIBinding(ImageBinding):
    """Pictures from ComfyUI, through the shipped text-to-image workflow or your own.

    ``model`` is a checkpoint file name (``/object_info/CheckpointLoaderSimple``
    lists them); ``workflow`` an API-format workflow (dict, JSON text or path).
    """

    name = "comfyui"
    default_host = "http://127.0.0.1:8188"
    host_env = "COMFYUI_HOST"
    start_hint = "start ComfyUI (python main.py), or point at it with --host / COMFYUI_HOST"
    reports_progress = True  # through its /ws feed; over HTTP it tells only waiting from running
    image_priority = 30
    probe_hosts = ("http://127.0.0.1:8188",)

    def __init__(self, *args: Any, workflow: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workflow = load_workflow(workflow) if workflow is not None else default_workflow()
        self._own_workflow = workflow is not None
        self.client_id = uuid.uuid4().hex

    def _normalize_host(self, host: str) -> str:
        return normalize_host(host, 8188)

    @classmethod
    def probe_image(cls, client: httpx.Client) -> Probe | None:
        """ComfyUI on 8188 (or ``COMFYUI_HOST``)."""
        host = normalize_host(cls._probe_host(), 8188)
        try:
            r = client.get(host + "/system_stats")
            ok = r.status_code == 200 and isinstance(r.json().get("system"), dict)
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return Probe(host, None, f"ComfyUI answered at {host}") if ok else None

    def _list_models(self) -> list[ModelInfo]:
        data = self._get_json("/object_info/CheckpointLoaderSimple")
        try:
            names = data["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
        except (KeyError, IndexError, TypeError):
            raise ProtocolError(
                f"{self._where()}: object_info has no checkpoint list", binding=self.name, url=self.host
            ) from None
        return [ModelInfo(str(n)) for n in names]

    def get_settings(self) -> dict[str, Any]:
        """The workflow's sampler and checkpoint settings (``set_settings`` changes them)."""
        found: dict[str, Any] = {}
        for node in _nodes(self.workflow, (*_SAMPLERS, "CheckpointLoaderSimple")):
            found.update({k: v for k, v in node["inputs"].items() if not isinstance(v, list)})
        found["workflow"] = "your own" if self._own_workflow else "txt2img (shipped)"
        return found

    def set_settings(self, settings: Any = None, **values: Any) -> bool:
        """Set inputs of the workflow's sampler or checkpoint loader (``sampler_name="dpmpp_2m"``...)."""
        changes = {**(settings or {}), **values}
        nodes = _nodes(self.workflow, (*_SAMPLERS, "CheckpointLoaderSimple"))
        for name, value in changes.items():
            owners = [n for n in nodes if name in n["inputs"]]
            if not owners:
                raise InvalidOptionError(f"the workflow has no setting {name!r}; see %lollms tti settings")
            for node in owners:
                node["inputs"][name] = value
        return True

    def setting_choices(self) -> dict[str, list[str]]:
        """The values ``/object_info`` lists for the inputs of the workflow's sampler and checkpoint loader.

        ComfyUI describes a choice input as ``[[value, ...], {...}]``, or in
        its newer form as ``["COMBO", {"options": [value, ...]}]``: both are read.
        """
        choices: dict[str, list[str]] = {}
        nodes = _nodes(self.workflow, (*_SAMPLERS, "CheckpointLoaderSimple"))
        for cls in sorted({node["class_type"] for node in nodes}):
            info = self._get_json(f"/object_info/{cls}")
            try:
                required = info[cls]["input"]["required"]
            except (KeyError, TypeError):
                continue  # a node this server does not know: its inputs stay typed
            for name, spec in required.items() if isinstance(required, dict) else ():
                listed = _listed_values(spec)
                if listed:
                    choices[name] = listed
        return choices

    # -- the job ----------------------------------------------------------------

    def _make(self, request: ImageRequest, progress: Progress) -> ImageResult:
        seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
        ckpt = request.model
        if ckpt is None and not self._own_workflow:  # the shipped workflow names a common checkpoint
            names = [m.name for m in self._list_models()]
            shipped = _nodes(self.workflow, ("CheckpointLoaderSimple",))[0]["inputs"]["ckpt_name"]
            ckpt = shipped if shipped in names or not names else names[0]
        graph = fill_workflow(self.workflow, request, seed, ckpt)
        feed = self._feed()  # opened first, so that no step of our prompt is missed
        try:
            return self._run(graph, request, seed, ckpt, progress, feed)
        finally:
            if feed is not None:
                feed.close()

    def _feed(self) -> ProgressFeed | None:
        """ComfyUI's event feed for this client, or None when it cannot be opened (then: waiting only)."""
        try:
            return ProgressFeed(self.host, self.client_id, timeout=self.connect_timeout, verify=self._verify)
        except OSError:
            return None

    def _run(
        self,
        graph: dict[str, Any],
        request: ImageRequest,
        seed: int,
        ckpt: str | None,
        progress: Progress,
        feed: ProgressFeed | None,
    ) -> ImageResult:
        queued = self._request_json("POST", "/prompt", {"prompt": graph, "client_id": self.client_id})
        prompt_id = queued.get("prompt_id") if isinstance(queued, dict) else None
        if not prompt_id:
            raise ProtocolError(
                f"{self._where()}: /prompt answered without a prompt_id", binding=self.name, url=self.host
            )
        try:
            entry = self._wait(str(prompt_id), progress, feed)
        except KeyboardInterrupt:
            self._cancel(prompt_id)
            raise
        images = [self._fetch(ref) for ref in _output_refs(entry)]
        sampler = (_nodes(graph, _SAMPLERS) or [{"inputs": {}}])[0]["inputs"]
        return ImageResult(
            images,
            request.prompt,
            width=request.width,
            height=request.height,
            seed=seed,
            seeds=[seed],
            steps=sampler.get("steps"),
            cfg_scale=sampler.get("cfg"),
            model=ckpt,
            info={"prompt_id": prompt_id, "sampler_name": sampler.get("sampler_name")},
        )

    def _wait(self, prompt_id: str, progress: Progress, feed: ProgressFeed | None) -> dict[str, Any]:
        deadline = time.monotonic() + self.read_timeout
        while True:
            history = self._get_json(f"/history/{prompt_id}")
            if isinstance(history, dict) and prompt_id in history:
                entry: dict[str, Any] = history[prompt_id]
                self._check_status(entry)
                return entry
            if time.monotonic() > deadline:
                self._cancel(prompt_id)
                raise BindingTimeout(
                    f"{self._where()} did not finish the picture within {self.read_timeout:g} s; the job "
                    "was cancelled: raise the timeout (--timeout, or read_timeout=)",
                    binding=self.name,
                    url=self.host,
                )
            progress(feed.fraction(prompt_id) if feed is not None else None)
            time.sleep(self.poll_interval)

    def _check_status(self, entry: dict[str, Any]) -> None:
        status = entry.get("status") or {}
        if status.get("status_str", "success") == "success":
            return
        for event, data in status.get("messages") or []:
            if event == "execution_error":
                raise ServerError(
                    f"{self._where()} failed in {data.get('node_type')} (node {data.get('node_id')}): "
                    f"{data.get('exception_message', '').strip()}; check ComfyUI's log",
                    binding=self.name,
                    url=self.host,
                )
            if event == "execution_interrupted":
                raise ServerError(
                    f"{self._where()}: the job was interrupted on the server",
                    binding=self.name,
                    url=self.host,
                )
        raise ServerError(f"{self._where()}: the job failed", binding=self.name, url=self.host)

    def _fetch(self, ref: dict[str, Any]) -> bytes:
        params = {k: str(ref.get(k, "")) for k in ("filename", "subfolder", "type")}
        r = self._open("GET", "/view?" + str(httpx.QueryParams(params)))
        try:
            with self._reading(r, "the picture"):
                return r.read()
        finally:
            r.close()

    def _cancel(self, job: Any) -> None:
        for path, body in (("/interrupt", {"prompt_id": job}), ("/queue", {"delete": [job]})):
            try:
                self.client.post(self._url(path), json=body, timeout=5.0)
            except httpx.HTTPError:
                pass

    def _status_error(self, response: httpx.Response, body: bytes, url: str) -> BindingError:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if response.status_code != 400 or not isinstance(data, dict) or "error" not in data:
            return super()._status_error(response, body, url)
        problems, missing_ckpt = _node_problems(data.get("node_errors"))
        error = data["error"]
        head = error.get("message", "invalid workflow") if isinstance(error, dict) else str(error)
        message = f"{self._where()} refused the workflow: {head}" + (
            f" ({'; '.join(problems)})" if problems else ""
        )
        if missing_ckpt is not None:
            return UnknownModelError(
                f"{self._where()} has no checkpoint {missing_ckpt!r}; see %lollms tti models",
                binding=self.name,
                url=url,
                status_code=400,
            )
        return BadRequestError(message, binding=self.name, url=url, status_code=400)


def _listed_values(spec: Any) -> list[str] | None:
    """The values of a choice input of ``/object_info`` (either form), else None."""
    if not isinstance(spec, list) or not spec:
        return None
    if isinstance(spec[0], list):
        return [str(v) for v in spec[0]]
    if spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
        options = spec[1].get("options")
        return [str(v) for v in options] if isinstance(options, list) else None
    return None


def _node_problems(node_errors: Any) -> tuple[list[str], str | None]:
    problems: list[str] = []
    missing: str | None = None
    for node_id, err in (node_errors or {}).items() if isinstance(node_errors, dict) else ():
        for e in err.get("errors", []):
            problems.append(f"{err.get('class_type')} node {node_id}: {e.get('details') or e.get('message')}")
            info = e.get("extra_info") or {}
            if e.get("type") == "value_not_in_list" and info.get("input_name") == "ckpt_name":
                missing = str(info.get("received_value"))
    return problems[:4], missing


def _output_refs(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The saved pictures of a finished job (``output`` ones; previews when there are none)."""
    refs = [i for out in (entry.get("outputs") or {}).values() for i in out.get("images", [])]
    saved = [r for r in refs if r.get("type") == "output"]
    return saved or refs
