"""Loopback imitation of ComfyUI's HTTP API (port 8188), with a real job queue.

Checked against comfyanonymous/ComfyUI:

* ``server.py`` ``PromptServer.__init__`` routes, each also under ``/api``:
  ``post_prompt`` (``{"prompt_id", "number", "node_errors"}``; a body without
  ``prompt`` → ``400 {"error": {"type": "no_prompt", ...}, "node_errors": {}}``;
  an invalid graph → ``400 {"error": ..., "node_errors": ...}``), ``get_history``
  (``{}`` until the job is done), ``get_queue`` (``queue_running`` /
  ``queue_pending`` items ``[number, prompt_id, prompt, extra_data, outputs]``),
  ``post_queue`` (``delete`` / ``clear``), ``post_interrupt`` (optional
  ``{"prompt_id"}``: only that prompt, and only while it runs), ``view_image``
  (``..`` or a leading ``/`` in ``filename`` → 400, a ``subfolder`` that escapes →
  403, missing file → 404, else the file), ``get_object_info``, ``get_models``,
  ``system_stats``, and ``origin_only_middleware`` (403 when ``Origin`` does
  not match ``Host``).
* ``execution.py`` ``validate_prompt`` / ``validate_inputs`` — ``invalid_prompt``
  (missing ``class_type``, unknown node), ``prompt_no_outputs``, and
  ``prompt_outputs_failed_validation`` with per-node ``node_errors``
  (``required_input_missing``, ``invalid_input_type``, ``value_smaller_than_min``,
  ``value_bigger_than_max``, ``value_not_in_list``, ``return_type_mismatch``).
* ``main.py`` ``prompt_worker`` + ``PromptQueue.task_done`` — one job at a time;
  the history entry holds ``outputs`` and ``status`` ``{"status_str": "success" |
  "error", "completed", "messages": [[event, data], ...]}``; an interrupt ends
  the job with ``execution_interrupted``, a node failure with ``execution_error``.

The built-in nodes are the text-to-image set (CheckpointLoaderSimple,
CLIPTextEncode, EmptyLatentImage, KSampler, VAEDecode, SaveImage,
PreviewImage). Pictures are ``(width // 8) * 8`` by ``(height // 8) * 8`` PNGs,
one per latent in the batch. Knobs: ``step_delay`` (seconds per KSampler step),
``execution_error`` (a message KSampler raises), ``models``, ``fail_next``.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from .base import Exchange, LoopbackServer
from .images import make_png

SAMPLERS = ["euler", "euler_ancestral", "dpmpp_2m", "ddim"]
SCHEDULERS = ["normal", "karras", "exponential", "simple"]
_NO_PROMPT = {
    "type": "no_prompt",
    "message": "No prompt provided",
    "details": "No prompt provided",
    "extra_info": {},
}


def node_specs(models: list[str]) -> dict[str, dict[str, Any]]:
    """INPUT_TYPES / RETURN_TYPES / OUTPUT_NODE of the nodes this server knows."""
    size = {"default": 512, "min": 16, "max": 16384, "step": 8}
    return {
        "CheckpointLoaderSimple": {
            "required": {"ckpt_name": (list(models),)},
            "returns": ("MODEL", "CLIP", "VAE"),
        },
        "CLIPTextEncode": {
            "required": {"text": ("STRING", {"multiline": True}), "clip": ("CLIP",)},
            "returns": ("CONDITIONING",),
        },
        "EmptyLatentImage": {
            "required": {
                "width": ("INT", size),
                "height": ("INT", size),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
            },
            "returns": ("LATENT",),
        },
        "KSampler": {
            "required": {
                "model": ("MODEL",),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF}),
                "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
                "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0}),
                "sampler_name": (SAMPLERS,),
                "scheduler": (SCHEDULERS,),
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "latent_image": ("LATENT",),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0}),
            },
            "returns": ("LATENT",),
        },
        "VAEDecode": {"required": {"samples": ("LATENT",), "vae": ("VAE",)}, "returns": ("IMAGE",)},
        "SaveImage": {
            "required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "ComfyUI"})},
            "returns": (),
            "output": True,
        },
        "PreviewImage": {"required": {"images": ("IMAGE",)}, "returns": (), "output": True},
    }


def _err(type_: str, message: str, details: str, extra: dict | None = None) -> dict[str, Any]:
    return {"type": type_, "message": message, "details": details, "extra_info": extra or {}}


class _Interrupted(Exception):
    pass


class ComfyUIServer(LoopbackServer):
    """ComfyUI's prompt queue, history and file routes."""

    default_models = ("v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors")

    def __init__(self, models: list[str] | None = None, api_key: str | None = None):
        super().__init__(models, None)
        self.step_delay = 0.0
        self.execution_error: str | None = None
        self.number = 0
        self.pending: list[tuple] = []
        self.running: tuple | None = None
        self.history: dict[str, dict[str, Any]] = {}
        self.files: dict[tuple[str, str, str], bytes] = {}
        self.interrupted_prompts: list[str] = []
        self.progress: dict[str, tuple[int, int]] = {}  # prompt_id -> (step, steps) of its KSampler
        self._interrupt = threading.Event()
        self._work = threading.Condition()
        self._counter = 0
        self._worker: threading.Thread | None = None

    # -- lifecycle: a prompt worker next to the HTTP server
    def start(self, port: int = 0) -> ComfyUIServer:
        super().start(port)
        self._worker = threading.Thread(target=self._work_loop, name="ComfyUI-worker", daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._work:
            self._work.notify_all()
        super().stop()
        if self._worker is not None:
            self._worker.join(timeout=5)

    def route(self, method: str, path: str, fn: Any) -> None:
        super().route(method, path, fn)
        super().route(method, "/api" + path, fn)  # PromptServer.add_routes: every route under /api too

    def setup_routes(self) -> None:
        self.route("POST", "/prompt", self.post_prompt)
        self.route("GET", "/prompt", self.get_prompt)
        self.route("GET", "/queue", self.get_queue)
        self.route("POST", "/queue", self.post_queue)
        self.route("POST", "/interrupt", self.post_interrupt)
        self.route("GET", "/history", self.get_history_all)
        self.route("GET", "/history/*", self.get_history)
        self.route("GET", "/view", self.view)
        self.route("GET", "/object_info", self.object_info)
        self.route("GET", "/object_info/*", self.object_info)
        self.route("GET", "/models/*", self.models_in)
        self.route("GET", "/system_stats", self.system_stats)

    def check_auth(self, ex: Exchange) -> bool:
        # origin_only_middleware: a browser page on another origin may not queue work.
        origin, host = ex.req.headers.get("origin"), ex.req.headers.get("host")
        if origin and host and origin.split("://", 1)[-1].lower() != host.lower():
            ex.send(403, b"", "text/plain")
            return True
        return False

    def planned_failure(self, ex: Exchange, status: int, headers: dict, code: str | None) -> None:
        ex.send_text(f"{status}: {code or 'Planned failure'}", status, headers=headers)

    def not_found(self, ex: Exchange) -> None:
        ex.send_text("404: Not Found", 404)

    # -- queue routes
    def post_prompt(self, ex: Exchange) -> None:
        body = ex.json
        if not isinstance(body, dict):  # await request.json() raised: aiohttp's bare 500
            ex.send_text("500 Internal Server Error\n\nServer got itself in trouble", 500)
            return
        number = float(body["number"]) if "number" in body else self._next_number(body.get("front"))
        if "prompt" not in body:
            ex.send_json({"error": _NO_PROMPT, "node_errors": {}}, 400)
            return
        prompt = body["prompt"]
        ok, error, outputs, node_errors = self.validate_prompt(prompt)
        if not ok:
            ex.send_json({"error": error, "node_errors": node_errors}, 400)
            return
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        with self._work:
            self.pending.append((number, prompt_id, prompt, extra, outputs))
            self.pending.sort(key=lambda item: item[0])
            self._work.notify_all()
        ex.send_json({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    def _next_number(self, front: Any) -> float:
        with self._work:
            number = self.number
            self.number += 1
        return float(-number if front else number)

    def get_prompt(self, ex: Exchange) -> None:
        with self._work:
            remaining = len(self.pending) + (1 if self.running else 0)
        ex.send_json({"exec_info": {"queue_remaining": remaining}})

    def get_queue(self, ex: Exchange) -> None:
        with self._work:
            running = [list(self.running)] if self.running else []
            pending = [list(item) for item in self.pending]
        ex.send_json({"queue_running": running, "queue_pending": pending})

    def post_queue(self, ex: Exchange) -> None:
        body = ex.json if isinstance(ex.json, dict) else {}
        with self._work:
            if body.get("clear"):
                self.pending.clear()
            for pid in body.get("delete") or []:
                self.pending = [item for item in self.pending if item[1] != pid]
        ex.send(200, b"", "application/octet-stream")

    def post_interrupt(self, ex: Exchange) -> None:
        body = ex.json if isinstance(ex.json, dict) else {}
        wanted = body.get("prompt_id")
        with self._work:
            running = self.running[1] if self.running else None
        if not wanted or wanted == running:
            self._interrupt.set()  # nodes.interrupt_processing(): the sampler stops at its next step
        ex.send(200, b"", "application/octet-stream")

    def get_history_all(self, ex: Exchange) -> None:
        with self._work:
            ex.send_json(dict(self.history))

    def get_history(self, ex: Exchange) -> None:
        prompt_id = ex.req.path.rsplit("/", 1)[-1]
        with self._work:
            entry = self.history.get(prompt_id)
        ex.send_json({prompt_id: entry} if entry else {})

    # -- files and info
    def view(self, ex: Exchange) -> None:
        q = {k: v[0] for k, v in ex.req.query.items()}
        if "filename" not in q:
            ex.send(404, b"", "text/plain")
            return
        name = q["filename"]
        if not name or name[0] == "/" or ".." in name:
            ex.send(400, b"", "text/plain")
            return
        kind = q.get("type", "output")
        if kind not in ("output", "input", "temp"):
            ex.send(400, b"", "text/plain")
            return
        sub = q.get("subfolder", "")
        if sub.startswith("/") or ".." in sub.split("/"):
            ex.send(403, b"", "text/plain")
            return
        data = self.files.get((kind, sub, name))
        if data is None:
            ex.send(404, b"", "text/plain")
            return
        ex.send(200, data, "image/png", {"Content-Disposition": f'filename="{name}"'})

    def object_info(self, ex: Exchange) -> None:
        specs = node_specs(self.models)
        wanted = ex.req.path.rsplit("/", 1)[-1]
        names = [wanted] if wanted != "object_info" else list(specs)
        out = {}
        for name in names:
            if name in specs:
                spec = specs[name]
                out[name] = {
                    "input": {"required": spec["required"]},
                    "input_order": {"required": list(spec["required"])},
                    "output": list(spec["returns"]),
                    "output_is_list": [False] * len(spec["returns"]),
                    "output_name": list(spec["returns"]),
                    "name": name,
                    "display_name": name,
                    "description": "",
                    "python_module": "nodes",
                    "category": "loaders",
                    "output_node": bool(spec.get("output")),
                }
        ex.send_json(out)

    def models_in(self, ex: Exchange) -> None:
        folder = ex.req.path.rsplit("/", 1)[-1]
        if folder != "checkpoints":
            ex.send(404, b"", "text/plain")
            return
        ex.send_json(list(self.models))

    def system_stats(self, ex: Exchange) -> None:
        ex.send_json(
            {
                "system": {
                    "os": "posix",
                    "ram_total": 16 << 30,
                    "ram_free": 8 << 30,
                    "comfyui_version": "0.3.43",
                    "python_version": "3.11.9",
                    "pytorch_version": "2.5.1",
                    "embedded_python": False,
                    "argv": ["main.py"],
                },
                "devices": [
                    {
                        "name": "cpu",
                        "type": "cpu",
                        "index": None,
                        "vram_total": 0,
                        "vram_free": 0,
                        "torch_vram_total": 0,
                        "torch_vram_free": 0,
                    }
                ],
            }
        )

    # -- validation (execution.validate_prompt)
    def validate_prompt(self, prompt: Any) -> tuple[bool, Any, list[str], Any]:
        specs = node_specs(self.models)
        if not isinstance(prompt, dict):
            return (
                False,
                _err("invalid_prompt", "Cannot execute because the prompt is not a dict.", ""),
                [],
                {},
            )
        outputs = []
        for node_id, node in prompt.items():
            if not isinstance(node, dict) or "class_type" not in node:
                msg = "Cannot execute because a node is missing the class_type property."
                return False, _err("invalid_prompt", msg, f"Node ID '#{node_id}'"), [], {}
            if node["class_type"] not in specs:
                msg = f"Cannot execute because node {node['class_type']} does not exist."
                return False, _err("invalid_prompt", msg, f"Node ID '#{node_id}'"), [], {}
            if specs[node["class_type"]].get("output"):
                outputs.append(node_id)
        if not outputs:
            return False, _err("prompt_no_outputs", "Prompt has no outputs", ""), [], {}
        node_errors: dict[str, Any] = {}
        lines: list[str] = []
        for out in outputs:
            for node_id in self._reachable(prompt, out):
                errors = self.validate_inputs(prompt, node_id, specs)
                if errors:
                    entry = node_errors.setdefault(
                        node_id,
                        {
                            "errors": errors,
                            "dependent_outputs": [],
                            "class_type": prompt[node_id]["class_type"],
                        },
                    )
                    entry["dependent_outputs"].append(out)
                    lines += [f"{e['message']}: {e['details']}" for e in errors]
        good = [o for o in outputs if not any(o in e["dependent_outputs"] for e in node_errors.values())]
        if not good:
            msg = "Prompt outputs failed validation"
            return False, _err("prompt_outputs_failed_validation", msg, "\n".join(lines)), [], node_errors
        return True, None, good, node_errors

    def _reachable(self, prompt: dict, start: str) -> list[str]:
        seen: list[str] = []
        stack = [start]
        while stack:
            node_id = stack.pop()
            if node_id in seen or node_id not in prompt:
                continue
            seen.append(node_id)
            for value in (prompt[node_id].get("inputs") or {}).values():
                if isinstance(value, list) and len(value) == 2:
                    stack.append(str(value[0]))
        return seen

    def validate_inputs(self, prompt: dict, node_id: str, specs: dict) -> list[dict[str, Any]]:
        node = prompt[node_id]
        inputs = node.get("inputs") or {}
        errors = []
        for name, info in specs[node["class_type"]]["required"].items():
            if name not in inputs:
                errors.append(
                    _err("required_input_missing", "Required input is missing", name, {"input_name": name})
                )
                continue
            err = self._check_value(prompt, name, inputs[name], info, specs)
            if err:
                errors.append(err)
            elif info[0] in ("INT", "FLOAT"):
                inputs[name] = int(inputs[name]) if info[0] == "INT" else float(inputs[name])
        return errors

    def _check_value(self, prompt: dict, name: str, val: Any, info: tuple, specs: dict) -> dict | None:
        kind = info[0]
        extra = {"input_name": name, "input_config": list(info), "received_value": val}
        if isinstance(val, list):
            if len(val) != 2:
                msg = "Bad linked input, must be a length-2 list of [node_id, slot_index]"
                return _err("bad_linked_input", msg, name, extra)
            source = prompt.get(str(val[0]))
            returns = specs[source["class_type"]]["returns"] if source else ()
            got = returns[val[1]] if isinstance(val[1], int) and val[1] < len(returns) else None
            if got != kind:
                return _err(
                    "return_type_mismatch",
                    "Return type mismatch between linked nodes",
                    f"{name}, received_type({got}) mismatch input_type({kind})",
                    extra,
                )
            return None
        if isinstance(kind, list):
            if val not in kind:
                listed = str(kind) if len(kind) <= 20 else f"(list of length {len(kind)})"
                return _err(
                    "value_not_in_list", "Value not in list", f"{name}: '{val}' not in {listed}", extra
                )
            return None
        try:
            num = int(val) if kind == "INT" else float(val) if kind == "FLOAT" else str(val)
        except (TypeError, ValueError) as exc:
            return _err(
                "invalid_input_type",
                f"Failed to convert an input value to a {kind} value",
                f"{name}, {val}, {exc}",
                extra,
            )
        limits = info[1] if len(info) > 1 else {}
        if isinstance(num, (int, float)) and "min" in limits and num < limits["min"]:
            return _err(
                "value_smaller_than_min", f"Value {num} smaller than min of {limits['min']}", name, extra
            )
        if isinstance(num, (int, float)) and "max" in limits and num > limits["max"]:
            return _err(
                "value_bigger_than_max", f"Value {num} bigger than max of {limits['max']}", name, extra
            )
        return None

    # -- execution (main.prompt_worker)
    def _work_loop(self) -> None:
        while not self._stopping.is_set():
            with self._work:
                while not self.pending and not self._stopping.is_set():
                    self._work.wait(0.1)
                if self._stopping.is_set():
                    return
                self.running = self.pending.pop(0)
            item = self.running
            self._interrupt.clear()
            entry = self._execute(item)
            with self._work:
                self.history[item[1]] = entry
                self.running = None

    def _execute(self, item: tuple) -> dict[str, Any]:
        _number, prompt_id, prompt, _extra, outputs = item
        stamp = lambda: int(time.time() * 1000)  # noqa: E731
        messages: list[list[Any]] = [
            ["execution_start", {"prompt_id": prompt_id, "timestamp": stamp()}],
            ["execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": stamp()}],
        ]
        results: dict[str, Any] = {}
        ui: dict[str, Any] = {}
        executed: list[str] = []
        try:
            for out in outputs:
                self._run_node(prompt, out, prompt_id, results, ui, executed)
        except _Interrupted:
            self.interrupted_prompts.append(prompt_id)
            messages.append(
                [
                    "execution_interrupted",
                    {
                        "prompt_id": prompt_id,
                        "node_id": executed[-1:],
                        "executed": executed,
                        "timestamp": stamp(),
                    },
                ]
            )
            return self._entry(item, ui, "error", messages)
        except RuntimeError as exc:
            node_id = self._failing
            messages.append(
                [
                    "execution_error",
                    {
                        "prompt_id": prompt_id,
                        "node_id": node_id,
                        "node_type": prompt[node_id]["class_type"],
                        "executed": executed,
                        "exception_message": str(exc),
                        "exception_type": "RuntimeError",
                        "traceback": ['  File "nodes.py", line 1, in sample\n'],
                        "current_inputs": {},
                        "current_outputs": {},
                        "timestamp": stamp(),
                    },
                ]
            )
            return self._entry(item, ui, "error", messages)
        messages.append(["execution_success", {"prompt_id": prompt_id, "timestamp": stamp()}])
        return self._entry(item, ui, "success", messages)

    def _entry(self, item: tuple, ui: dict, status: str, messages: list) -> dict[str, Any]:
        meta = {n: {"node_id": n, "display_node": n, "parent_node": None, "real_node_id": n} for n in ui}
        return {
            "prompt": list(item),
            "outputs": ui,
            "meta": meta,
            "status": {"status_str": status, "completed": status == "success", "messages": messages},
        }

    def _run_node(
        self, prompt: dict, node_id: str, prompt_id: str, results: dict, ui: dict, executed: list[str]
    ) -> Any:
        if node_id in results:
            return results[node_id]
        node = prompt[node_id]
        args = {}
        for name, value in (node.get("inputs") or {}).items():
            if isinstance(value, list) and len(value) == 2:
                args[name] = self._run_node(prompt, str(value[0]), prompt_id, results, ui, executed)[value[1]]
            else:
                args[name] = value
        self._failing = node_id
        out = self._node_function(node["class_type"], args, node_id, prompt_id, ui)
        results[node_id] = out
        executed.append(node_id)
        return out

    def _node_function(self, cls: str, a: dict, node_id: str, prompt_id: str, ui: dict) -> tuple:
        if cls == "CheckpointLoaderSimple":
            return (f"model:{a['ckpt_name']}", "clip", "vae")
        if cls == "CLIPTextEncode":
            return (a["text"],)
        if cls == "EmptyLatentImage":
            return ({"width": a["width"], "height": a["height"], "batch": a["batch_size"]},)
        if cls == "KSampler":
            return (self._sample(a, prompt_id),)
        if cls == "VAEDecode":
            lat = a["samples"]
            return (
                [
                    make_png(lat["width"] // 8 * 8, lat["height"] // 8 * 8, lat["seed"] + i)
                    for i in range(lat["batch"])
                ],
            )
        kind = "output" if cls == "SaveImage" else "temp"
        prefix = a.get("filename_prefix", "ComfyUI") if kind == "output" else "ComfyUI_temp_loop"
        saved = []
        for data in a["images"]:
            self._counter += 1
            name = f"{prefix}_{self._counter:05d}_.png"
            self.files[(kind, "", name)] = data
            saved.append({"filename": name, "subfolder": "", "type": kind})
        ui[node_id] = {"images": saved}
        return ()

    def _sample(self, a: dict, prompt_id: str) -> dict[str, Any]:
        steps = int(a["steps"])
        for step in range(steps):
            if self._interrupt.is_set() or self._stopping.is_set():
                raise _Interrupted()
            if self.step_delay:
                self._stopping.wait(self.step_delay)
            self.progress[prompt_id] = (step + 1, steps)
        if self.execution_error:
            raise RuntimeError(self.execution_error)
        return {**a["latent_image"], "seed": int(a["seed"])}

    _failing = ""
