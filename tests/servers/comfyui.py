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
``execution_error`` (a message KSampler raises), ``ws_enabled``, ``models``, ``fail_next``.

``GET /ws?clientId=...`` is the event feed (``server.py`` ``websocket_handler``):
``status`` on connect, then for that client's prompts ``execution_start``,
``execution_cached``, ``executing`` per node, ``progress`` per sampler step
(``{"value", "max", "prompt_id", "node"}``), ``executed``, and
``execution_success`` / ``execution_error`` / ``execution_interrupted``, ending
with ``executing`` ``{"node": null}``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from typing import Any

from .base import Exchange, LoopbackServer
from .comfyui_nodes import node_specs, validate_prompt
from .images import make_png
from .websocket import handshake, serve_feed

_NO_PROMPT = {
    "type": "no_prompt",
    "message": "No prompt provided",
    "details": "No prompt provided",
    "extra_info": {},
}


class _Interrupted(Exception):
    pass


class ComfyUIServer(LoopbackServer):
    """ComfyUI's prompt queue, history and file routes."""

    default_models = ("v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors")

    def __init__(self, models: list[str] | None = None, api_key: str | None = None):
        super().__init__(models, None)
        self.step_delay = 0.0
        self.ws_enabled = True
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
        self._sockets: dict[str, queue.Queue[str]] = {}  # /ws clients by clientId
        self._client: str | None = None  # the client of the running prompt

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
        self.route("GET", "/ws", self.websocket)

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
        ok, error, outputs, node_errors = validate_prompt(prompt, self.models)
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

    # -- the event feed (server.py websocket_handler, PromptServer.send_json)
    def websocket(self, ex: Exchange) -> None:
        """``GET /ws?clientId=...``: ComfyUI's JSON events for that client, until it closes."""
        if not self.ws_enabled:  # behind a proxy that drops upgrades, say
            self.not_found(ex)
            return
        if not handshake(ex):
            return
        sid = (ex.req.query.get("clientId") or [""])[0] or uuid.uuid4().hex
        feed: queue.Queue[str] = queue.Queue()
        self._sockets[sid] = feed
        with self._work:
            remaining = len(self.pending) + (1 if self.running else 0)
        feed.put(
            json.dumps(
                {
                    "type": "status",
                    "data": {"status": {"exec_info": {"queue_remaining": remaining}}, "sid": sid},
                }
            )
        )
        try:
            serve_feed(ex, feed, self._stopping)
        finally:
            self._sockets.pop(sid, None)

    def _notify(self, event: str, data: dict[str, Any]) -> None:
        feed = self._sockets.get(self._client or "")
        if feed is not None:
            feed.put(json.dumps({"type": event, "data": data}))

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
        _number, prompt_id, prompt, extra, outputs = item
        self._client = extra.get("client_id")
        stamp = lambda: int(time.time() * 1000)  # noqa: E731
        messages: list[list[Any]] = [
            ["execution_start", {"prompt_id": prompt_id, "timestamp": stamp()}],
            ["execution_cached", {"nodes": [], "prompt_id": prompt_id, "timestamp": stamp()}],
        ]
        for event, data in messages:
            self._notify(event, data)
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
        for event, data in messages:  # the feed saw what the history keeps (and "executing"/"progress")
            if event not in ("execution_start", "execution_cached"):
                self._notify(event, data)
        self._notify("executing", {"node": None, "prompt_id": item[1]})
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
        self._notify("executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id})
        out = self._node_function(node["class_type"], args, node_id, prompt_id, ui)
        if node_id in ui:
            self._notify(
                "executed",
                {"node": node_id, "display_node": node_id, "output": ui[node_id], "prompt_id": prompt_id},
            )
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
            self._notify(
                "progress", {"value": step + 1, "max": steps, "prompt_id": prompt_id, "node": self._failing}
            )
        if self.execution_error:
            raise RuntimeError(self.execution_error)
        return {**a["latent_image"], "seed": int(a["seed"])}

    _failing = ""
