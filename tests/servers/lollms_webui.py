"""Loopback imitation of the legacy lollms-webui / lollms core server (port 9600).

Generation (``POST /lollms_generate``, ``POST /lollms_generate_with_images``)
streams **raw text chunks**: ``Content-Type: text/event-stream`` but no SSE
framing, no terminator and no in-band error. Chunk boundaries fall inside
words and multibyte characters. (The real server holds back a lone ``!`` chunk
in case ``@>`` follows, a role change, and drops it when generation ends
there: ``RECEPTION_MANAGER.new_chunk`` in lollms-webui's ``lollms/generation.py``;
so no stray ``!`` ever reaches a client.) ``stream: false`` answers ``text/plain``.

Quirks reproduced: ``model_name="server-error"`` → ``200 {"status": false,
"error": ...}``; ``model_name="no-binding"`` → ``200 null``; bad images on
``/lollms_generate_with_images`` → ``400 {"detail": "Error : ..."}``; missing
``prompt`` → ``422 {"detail": [...]}``. No auth. ``/v1/models`` is *not* served
(``404 {"detail": "Not Found"}``), which tells this generation apart from the
new LoLLMs server. Fault model names go in ``model_name``; ``fail-midstream``
simply ends the stream early (there is no in-band error in this protocol).
"""

from __future__ import annotations

import base64
import binascii
import re

from .base import Encoder, Exchange, LoopbackServer, Plan, looks_like_image

_NOT_B64 = re.compile(r"[^A-Za-z0-9+/]")


def user_text(prompt: str) -> str:
    """Last user turn of a ``!@>user: ...`` templated prompt, else the whole prompt."""
    if "!@>" not in prompt:
        return prompt
    for seg in reversed(prompt.split("!@>")):
        head, sep, rest = seg.partition(":")
        if sep and head.strip().lower() in ("user", "human"):
            return rest.strip()
    return prompt


class RawTextEncoder(Encoder):
    def piece(self, text: str) -> bytes:
        return text.encode("utf-8")

    def finish(self, plan: Plan, sent: int) -> bytes | None:
        return None  # no end marker: the body simply ends


def missing_field(loc: str, body) -> dict:
    return {"detail": [{"type": "missing", "loc": ["body", loc], "msg": "Field required", "input": body}]}


class LollmsWebuiServer(LoopbackServer):
    default_models = ("test-model", "vision-model")

    def __init__(self, models: list[str] | None = None, api_key: str | None = None):
        super().__init__(models, api_key)
        self.active_index = 0
        self._busy = 0
        self._cancel = False
        self.init_tti()

    def setup_routes(self) -> None:
        self.route("POST", "/lollms_generate", self.generate)
        self.route("POST", "/lollms_generate_with_images", self.generate_with_images)
        self.route("GET", "/list_models", self.list_models)
        self.route("GET", "/get_active_model", self.get_active_model)
        self.route("GET", "/get_model_status", self.get_model_status)
        self.route("GET", "/list_mounted_personalities", self.personalities)
        self.route("GET", "/get_generation_status", self.generation_status)
        self.route("POST", "/stop_gen", self.stop_gen)
        self.route("POST", "/lollms_tokenize", self.tokenize)
        self.route("POST", "/lollms_detokenize", self.detokenize)
        self.route("POST", "/list_tti_services", self.list_tti_services)
        self.route("POST", "/get_active_tti_settings", self.get_tti_settings)
        self.route("POST", "/set_active_tti_settings", self.set_tti_settings)
        self.route("POST", "/generate_image", self.generate_image)

    def planned_failure(self, ex: Exchange, status: int, headers: dict, code: str | None) -> None:
        msg = {429: "Too Many Requests"}.get(status, code or "Internal Server Error")
        ex.send_json({"detail": msg}, status, headers)

    # -- info routes
    def list_models(self, ex: Exchange) -> None:
        ex.send_json(list(self.models))

    def get_active_model(self, ex: Exchange) -> None:
        if not self.models:
            ex.send_json({"status": False})
        else:
            i = min(self.active_index, len(self.models) - 1)
            ex.send_json({"status": True, "model": self.models[i], "index": i})

    def get_model_status(self, ex: Exchange) -> None:
        ex.send_json({"status": bool(self.models)})

    def personalities(self, ex: Exchange) -> None:
        ex.send_json({"status": True, "personalities": ["generic/lollms"], "active_personality_id": 0})

    def generation_status(self, ex: Exchange) -> None:
        ex.send_json({"status": self._busy > 0})

    def stop_gen(self, ex: Exchange) -> None:
        self._cancel = True
        ex.send_json({"status": True})

    def tokenize(self, ex: Exchange) -> None:
        body = ex.json
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            ex.send_json(missing_field("prompt", body), 422)
            return
        ids = self.word_tokens(body["prompt"])
        if body.get("return_named"):
            ex.send_json([[w, i] for w, i in zip(body["prompt"].split(), ids, strict=False)])
        else:
            ex.send_json(ids)

    def detokenize(self, ex: Exchange) -> None:
        body = ex.json
        if not isinstance(body, dict) or not isinstance(body.get("tokens"), list):
            ex.send_json(missing_field("tokens", body), 422)
            return
        words = self.word_text(body["tokens"])
        if body.get("return_named"):
            ex.send_json([[w, i] for w, i in zip(words, body["tokens"], strict=False)])
        else:
            ex.send_json(" ".join(words))

    # -- generation
    def generate(self, ex: Exchange) -> None:
        body = ex.json
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            ex.send_json(missing_field("prompt", body), 422)
            return
        self._generate(ex, body)

    def generate_with_images(self, ex: Exchange) -> None:
        body = ex.json
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            ex.send_json(missing_field("prompt", body), 422)
            return
        images = body.get("images")
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            ex.send_json(missing_field("images", body), 422)
            return
        for img in images:
            err = self.image_error(img)
            if err:
                ex.send_json({"detail": f"Error : {err}"}, 400)
                return
        self._generate(ex, body)

    @staticmethod
    def image_error(img: str) -> str | None:
        """Decode the way the real server does: strip a PNG data-URL prefix,
        drop non-base64 characters, fix padding, then open as an image."""
        prefix = "data:image/png;base64,"
        if img.startswith(prefix):
            img = img[len(prefix) :]
        cleaned = _NOT_B64.sub("", img)
        cleaned += "=" * (-len(cleaned) % 4)
        try:
            data = base64.b64decode(cleaned)
        except (binascii.Error, ValueError) as exc:
            return str(exc)
        if not looks_like_image(data):
            return "cannot identify image file <_io.BytesIO object>"
        return None

    def _generate(self, ex: Exchange, body: dict) -> None:
        model = body.get("model_name") or (self.models[0] if self.models else "")
        if model == "server-error":
            ex.send_json({"status": False, "error": "Model generation failed: server-error"})
            return
        if model == "no-binding":
            ex.send_json(None)
            return
        limit = body.get("n_predict")
        plan = self.plan(model, user_text(body["prompt"]), limit if isinstance(limit, int) else None)
        self._busy += 1
        self._cancel = False
        try:
            if body.get("stream"):
                s = ex.stream(
                    "text/event-stream",
                    headers={"Cache-Control": "no-cache", "Connection": "keep-alive"},
                    mixed=not plan.fast,
                )
                self.drive(s, plan, RawTextEncoder(), cancelled=lambda: self._cancel)
                return
            if plan.fault in ("fail-midstream", "fail-midstream-llamacpp"):
                ex.send_json({"status": False, "error": "boom"})
                return
            data = plan.text.encode("utf-8")
            if not self.nonstream_fault(ex, plan, data, "text/plain; charset=utf-8"):
                ex.send(200, data, "text/plain; charset=utf-8")
        finally:
            self._busy -= 1

    # -- text to image (lollms/server/endpoints/lollms_tti.py)
    # list_tti_services / get_active_tti_settings take a pydantic ServiceListingRequest
    # (missing client_id → 422) and call lollms.security.check_access, which looks the
    # id up among live Socket.IO sessions (unknown → 400 "Not accessible without id").
    # set_active_tti_settings reads data["client_id"] / data["settings"] from the raw
    # JSON (missing → KeyError → a bare 500). generate_image takes ImageRequest
    # (prompt, negative_prompt, width, height; other fields are ignored), re-encodes the
    # picture as JPEG and wraps any failure as 500 {"detail": str(exc)} — hence the
    # "500: Image generation failed" text when no TTI service is active.
    def init_tti(self) -> None:
        self.client_ids: set[str] = {"loopback-client-id"}
        self.tti_active = True
        self.tti_delay = 0.0
        self.tti_services = [
            {"name": "diffusers", "caption": "Diffusers", "help": "Local diffusers models"},
            {"name": "dall-e", "caption": "Dall-E", "help": "OpenAI's Dall-E service"},
        ]
        self.tti_settings: list[dict] = [
            {"name": "model", "type": "str", "value": "stabilityai/sdxl-turbo",
             "options": ["stabilityai/sdxl-turbo", "runwayml/stable-diffusion-v1-5"], "help": "Model"},
            {"name": "steps", "type": "int", "value": 4, "help": "Sampling steps"},
        ]

    def _tti_access(self, ex: Exchange, raw: bool = False) -> bool:
        body = ex.json if isinstance(ex.json, dict) else None
        if body is None or "client_id" not in body:
            if raw:
                ex.send_text("Internal Server Error", 500)
            else:
                ex.send_json(missing_field("client_id", ex.json), 422)
            return False
        if body["client_id"] not in self.client_ids:
            ex.send_json({"detail": "Not accessible without id"}, 400)
            return False
        return True

    def list_tti_services(self, ex: Exchange) -> None:
        if self._tti_access(ex):
            ex.send_json(self.tti_services)

    def get_tti_settings(self, ex: Exchange) -> None:
        if self._tti_access(ex):
            ex.send_json(self.tti_settings if self.tti_active else {})

    def set_tti_settings(self, ex: Exchange) -> None:
        if not self._tti_access(ex, raw=True):
            return
        settings = ex.json.get("settings")
        if settings is None:
            ex.send_text("Internal Server Error", 500)
            return
        if not self.tti_active:
            ex.send_json({"status": False})
            return
        self.tti_settings = settings
        ex.send_json({"status": True})

    def generate_image(self, ex: Exchange) -> None:
        from .images import b64, make_jpeg

        body = ex.json
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
            ex.send_json(missing_field("prompt", body), 422)
            return
        width, height = body.get("width", 512), body.get("height", 512)
        if not isinstance(width, int) or not isinstance(height, int):
            loc = "width" if not isinstance(width, int) else "height"
            ex.send_json({"detail": [{"type": "int_parsing", "loc": ["body", loc],
                                      "msg": "Input should be a valid integer", "input": body[loc]}]}, 422)
            return
        if not self.tti_active:
            ex.send_json({"detail": "500: Image generation failed"}, 500)
            return
        if self.tti_delay:
            self._stopping.wait(self.tti_delay)
        ex.send_json({"image": b64(make_jpeg(width, height, len(body["prompt"])))})
