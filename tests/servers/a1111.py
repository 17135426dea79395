"""Loopback imitation of the AUTOMATIC1111 web UI API (``/sdapi/v1``, port 7860).

Checked against AUTOMATIC1111/stable-diffusion-webui (master):

* ``modules/api/api.py`` ``Api.__init__`` / ``add_api_route`` — the routes exist
  only when the UI was launched with ``--api`` (otherwise FastAPI answers
  ``404 {"detail": "Not Found"}``); with ``--api-auth`` every route depends on
  ``Api.auth`` (HTTP Basic).
* ``api_middleware.handle_exception`` — every error is
  ``{"error": <exception class>, "detail": ..., "body": ..., "errors": str(e)}``
  with the exception's status (``str(HTTPException)`` is ``"<status>: <detail>"``).
  Request validation keeps FastAPI's ``422 {"detail": [{"loc", "msg", "type"}]}``
  (pydantic v1 messages, the version the web UI pins).
* ``validate_sampler_name`` — unknown sampler → 404 ``"Sampler not found"``.
* ``text2imgapi`` — runs under ``queue_lock`` (one job at a time), answers
  ``{"images": [b64...], "parameters": <the request as given>, "info": <JSON
  string>}``; ``info`` carries the concrete ``seed``/``all_seeds`` when ``-1`` was
  asked. With more than one picture the grid comes first (``opts.return_grid``)
  and ``info.index_of_first_image`` is 1. An unknown ``sd_model_checkpoint`` in
  ``override_settings`` is not an error: ``sd_models.select_checkpoint`` loads
  a fallback and prints a warning (recorded here in ``fallbacks``).
* ``encode_pil_to_base64`` — the format is ``opts.samples_format`` (png, jpg, webp).
* ``progressapi`` — ``{"progress", "eta_relative", "state", "current_image",
  "textinfo", "current_task"}``, progress ``0.01 + job_no/job_count + ...``, 0 when idle.
* ``interruptapi`` → ``{}``: the sampling loop stops at its next step and the
  request still answers 200 with what was made so far (recorded in ``jobs``).
* ``set_config`` — unknown checkpoint → ``RuntimeError("model 'x' not found")``
  → 500; success answers ``null``.
* ``modules/processing.py`` — the latent is ``width // 8`` by ``height // 8``,
  so pictures are ``(width // 8) * 8`` pixels wide.

Knobs: ``api_enabled``, ``credentials`` (``("user", "pass")``), ``step_delay``
(seconds per sampling step: the slow mode), ``options`` (e.g.
``options["samples_format"] = "jpg"``), ``models``, ``fail_next``.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
import uuid
from typing import Any

from .a1111_api import (
    DEFAULTS,
    FLOAT_FIELDS,
    INT_FIELDS,
    SAMPLERS,
    STR_FIELDS,
    WebUIState,
    a1111_error,
    coerce_field,
)
from .base import Exchange, LoopbackServer
from .images import b64, grid, make_image


class A1111Server(LoopbackServer):
    """AUTOMATIC1111 / Forge / SD.Next ``/sdapi/v1``."""

    default_models = (
        "v1-5-pruned-emaonly.safetensors [6ce0161689]",
        "sd_xl_base_1.0.safetensors [31e35c80fc]",
    )

    def __init__(self, models: list[str] | None = None, api_key: str | None = None):
        super().__init__(models, None)
        self.api_enabled = True
        self.credentials: tuple[str, str] | None = None
        self.step_delay = 0.0
        self.state = WebUIState()
        self.queue_lock = threading.Lock()
        self.jobs: list[dict[str, Any]] = []
        self.fallbacks: list[str] = []
        self.options: dict[str, Any] = {
            "sd_model_checkpoint": self.models[0] if self.models else None,
            "samples_format": "png",
            "return_grid": True,
            "jpeg_quality": 80,
            "CLIP_stop_at_last_layers": 1,
            "sd_vae": "Automatic",
        }

    def setup_routes(self) -> None:
        self.route("GET", "/", self.home)
        api = {
            ("POST", "txt2img"): self.txt2img,
            ("GET", "progress"): self.progress,
            ("POST", "interrupt"): self.interrupt,
            ("POST", "skip"): self.skip,
            ("GET", "options"): self.get_options,
            ("POST", "options"): self.set_options,
            ("GET", "sd-models"): self.sd_models,
            ("GET", "samplers"): self.samplers,
            ("GET", "schedulers"): self.schedulers,
            ("POST", "refresh-checkpoints"): self.refresh,
        }
        for (method, name), fn in api.items():
            self.route(method, "/sdapi/v1/" + name, fn)

    # -- gates
    def check_auth(self, ex: Exchange) -> bool:
        if not ex.req.path.startswith("/sdapi/"):
            return False
        if not self.api_enabled:  # launched without --api: the routes do not exist
            ex.send_json({"detail": "Not Found"}, 404)
            return True
        if self.credentials is None:
            return False
        given = ex.req.headers.get("authorization", "")
        if not given.startswith("Basic "):
            a1111_error(ex, 401, "Not authenticated", headers={"WWW-Authenticate": "Basic"})
            return True
        try:
            user, _, password = base64.b64decode(given[6:]).decode().partition(":")
        except ValueError:
            user, password = "", ""
        if (user, password) != self.credentials:
            a1111_error(ex, 401, "Incorrect username or password", headers={"WWW-Authenticate": "Basic"})
            return True
        return False

    def planned_failure(self, ex: Exchange, status: int, headers: dict, code: str | None) -> None:
        a1111_error(ex, status, code or "Planned failure", headers=headers)

    # -- checkpoints
    def checkpoint_cards(self) -> list[dict[str, Any]]:
        cards = []
        for title in self.models:
            name, _, rest = title.partition(" [")
            short = rest.rstrip("]") or None
            cards.append(
                {
                    "title": title,
                    "model_name": name.rsplit(".", 1)[0],
                    "hash": short,
                    "sha256": (short or "0") * 6,
                    "filename": f"/models/Stable-diffusion/{name}",
                    "config": None,
                }
            )
        return cards

    def resolve_checkpoint(self, name: str) -> str | None:
        """``sd_models.checkpoint_aliases``: title, file name, model name or hash."""
        for card in self.checkpoint_cards():
            if name in (card["title"], card["model_name"], card["hash"], card["filename"].rsplit("/", 1)[-1]):
                return str(card["title"])
        return None

    # -- routes
    def home(self, ex: Exchange) -> None:
        ex.send_text(
            "<!DOCTYPE html><html><head><title>Stable Diffusion</title></head><body></body></html>",
            content_type="text/html; charset=utf-8",
        )

    def sd_models(self, ex: Exchange) -> None:
        ex.send_json(self.checkpoint_cards())

    def samplers(self, ex: Exchange) -> None:
        ex.send_json([{"name": n, "aliases": a, "options": {}} for n, a in SAMPLERS.items()])

    def schedulers(self, ex: Exchange) -> None:
        ex.send_json(
            [
                {
                    "name": "automatic",
                    "label": "Automatic",
                    "aliases": None,
                    "default_rho": -1,
                    "need_inner_model": False,
                }
            ]
        )

    def refresh(self, ex: Exchange) -> None:
        ex.send_json(None)

    def get_options(self, ex: Exchange) -> None:
        ex.send_json(dict(self.options))

    def set_options(self, ex: Exchange) -> None:
        body = ex.json
        if not isinstance(body, dict):
            ex.send_json(
                {
                    "detail": [
                        {"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}
                    ]
                },
                422,
            )
            return
        if body.get("sd_model_checkpoint") is not None:
            title = self.resolve_checkpoint(str(body["sd_model_checkpoint"]))
            if title is None:
                msg = f"model {body['sd_model_checkpoint']!r} not found"
                a1111_error(ex, 500, "", error="RuntimeError", errors=msg)
                return
            body = {**body, "sd_model_checkpoint": title}
        self.options.update(body)
        ex.send_json(None)

    def progress(self, ex: Exchange) -> None:
        s = self.state
        if s.job_count == 0:
            ex.send_json(
                {
                    "progress": 0,
                    "eta_relative": 0,
                    "state": s.dict(),
                    "current_image": None,
                    "textinfo": None,
                    "current_task": None,
                }
            )
            return
        progress = 0.01 + s.job_no / s.job_count
        if s.sampling_steps > 0:
            progress += 1 / s.job_count * s.sampling_step / s.sampling_steps
        elapsed = time.time() - s.time_start
        eta = elapsed / progress
        ex.send_json(
            {
                "progress": min(progress, 1),
                "eta_relative": eta - elapsed,
                "state": s.dict(),
                "current_image": None,
                "textinfo": None,
                "current_task": s.task_id,
            }
        )

    def interrupt(self, ex: Exchange) -> None:
        self.state.interrupted = True
        ex.send_json({})

    def skip(self, ex: Exchange) -> None:
        self.state.skipped = True
        ex.send_json(None)

    # -- generation
    def validate(self, body: Any) -> tuple[dict[str, Any] | None, list[dict]]:
        if not isinstance(body, dict):
            return None, [{"loc": ["body"], "msg": "value is not a valid dict", "type": "type_error.dict"}]
        req = {**DEFAULTS, **body}
        errors = []
        for name in (*INT_FIELDS, *FLOAT_FIELDS, *STR_FIELDS):
            req[name], err = coerce_field(name, req.get(name))
            if err:
                errors.append(err)
        return req, errors

    def txt2img(self, ex: Exchange) -> None:
        req, errors = self.validate(ex.json)
        if errors or req is None:
            ex.send_json({"detail": errors}, 422)
            return
        sampler = req["sampler_name"] or req["sampler_index"]
        names = {n: n for n in SAMPLERS} | {a: n for n, al in SAMPLERS.items() for a in al}
        if sampler not in names:
            a1111_error(ex, 404, "Sampler not found")
            return
        checkpoint = self.options["sd_model_checkpoint"]
        wanted = (req["override_settings"] or {}).get("sd_model_checkpoint")
        if wanted:
            checkpoint = self.resolve_checkpoint(str(wanted))
            if checkpoint is None:  # select_checkpoint prints a warning and loads a fallback
                self.fallbacks.append(str(wanted))
                checkpoint = self.models[0]
        with self.queue_lock:
            made, info = self.run_job(req, names[sampler], checkpoint)
        ex.send_json(
            {"images": made if req["send_images"] else [], "parameters": req, "info": json.dumps(info)}
        )

    def run_job(self, req: dict[str, Any], sampler: str, checkpoint: str) -> tuple[list[str], dict]:
        """Sample step by step (``step_delay`` each), honouring interrupt and skip."""
        s = self.state
        s.reset()
        s.job, s.task_id = "scripts_txt2img", f"task({uuid.uuid4().hex[:15]})"
        s.job_timestamp = time.strftime("%Y%m%d%H%M%S")
        s.job_count, s.sampling_steps = req["n_iter"], req["steps"]
        seed = req["seed"] if req["seed"] not in (None, -1) else random.randrange(4294967294)
        batch = max(1, req["batch_size"])
        steps_done = started = 0
        for it in range(req["n_iter"]):
            if s.interrupted:
                break
            s.job_no, s.sampling_step, started = it, 0, started + 1
            for step in range(req["steps"]):
                if s.interrupted or s.skipped or self._stopping.is_set():
                    break
                if self.step_delay:
                    self._stopping.wait(self.step_delay)
                s.sampling_step, steps_done = step + 1, steps_done + 1
            s.skipped = False
        self.jobs.append(
            {
                "prompt": req["prompt"],
                "steps_done": steps_done,
                "interrupted": s.interrupted,
                "checkpoint": checkpoint,
                "seed": seed,
            }
        )
        s.reset()
        return self.encode(req, seed, batch * started, sampler, checkpoint)

    def encode(
        self, req: dict[str, Any], seed: int, count: int, sampler: str, checkpoint: str
    ) -> tuple[list[str], dict]:
        width, height = req["width"] // 8 * 8, req["height"] // 8 * 8
        fmt = {"jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}.get(
            str(self.options["samples_format"]).lower(), "PNG"
        )
        seeds = [seed + i for i in range(count)]
        made = [b64(make_image(width, height, fmt, s, int(self.options["jpeg_quality"]))) for s in seeds]
        first = 0
        if count > 1 and self.options.get("return_grid"):
            made.insert(0, b64(grid(width, height, count, fmt)))
            first = 1
        prompt, negative = req["prompt"], req["negative_prompt"]
        info = {
            "prompt": prompt,
            "all_prompts": [prompt] * count,
            "negative_prompt": negative,
            "all_negative_prompts": [negative] * count,
            "seed": seed,
            "all_seeds": seeds,
            "subseed": seed + 1,
            "all_subseeds": [s + 1 for s in seeds],
            "subseed_strength": req["subseed_strength"],
            "width": req["width"],
            "height": req["height"],
            "sampler_name": sampler,
            "cfg_scale": req["cfg_scale"],
            "steps": req["steps"],
            "batch_size": req["batch_size"],
            "restore_faces": False,
            "sd_model_name": checkpoint.split(" [")[0],
            "sd_model_hash": checkpoint.partition(" [")[2].rstrip("]") or None,
            "seed_resize_from_w": -1,
            "seed_resize_from_h": -1,
            "denoising_strength": None,
            "extra_generation_params": {},
            "index_of_first_image": first,
            "infotexts": [f"{prompt}\nSteps: {req['steps']}, Seed: {s}" for s in seeds],
            "styles": [],
            "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
            "clip_skip": 1,
            "is_using_inpainting_conditioning": False,
            "version": "v1.10.1",
        }
        return made, info
