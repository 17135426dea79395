"""Loopback imitation of the native Ollama REST API (default port 11434).

Routes: ``GET|HEAD /`` ("Ollama is running"), ``GET|HEAD /api/version``,
``GET|HEAD /api/tags``, ``POST /api/show``, ``GET /api/ps``, ``POST /api/generate``
and ``POST /api/chat`` (NDJSON stream by default, ``stream: false`` → one JSON
object). Errors are ``{"error": "..."}``; unknown routes get Go's plain-text
``404 page not found``. Model names are ``name[:tag]``; a missing tag means
``latest``. No auth (``api_key`` is ignored, as Ollama does). The ``think``
model sends its reasoning first, in lines whose ``message.thinking`` (chat) or
``thinking`` (generate) holds it and whose content is empty (api/types.go,
``omitempty``); a whole answer carries it all in the same field.

``format`` (``"json"`` or a JSON Schema, as Ollama 0.5+ takes it) gets a JSON
answer that follows the schema (``tests/servers/structured.py``);
``refuse_formats = {"schema"}`` answers a schema as Ollama before 0.5 did,
whose ``Format`` field was a string (Go's unmarshal error, 400).

``tools`` on ``/api/chat`` (``tests/servers/tools.py``): with ``tool_script``
set, the script's calls come whole, one line each before the ``done`` line
(or all in the whole answer's message), then the tools' results as text.
"""

from __future__ import annotations

import json
import time

from .base import Encoder, Exchange, LoopbackServer, Plan, is_special_model, reasoning_of, split_pieces
from .tools import ids_for, ollama_calls, planned_calls, tool_text

_B64 = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
MIDSTREAM_ERROR = "an error was encountered while running the model"


def base64_error(s: object) -> str | None:
    """Go-style ``illegal base64 data at input byte N`` for a bad image string."""
    if not isinstance(s, str):
        return "illegal base64 data at input byte 0"
    body = s.rstrip("=")
    for i, ch in enumerate(body):
        if ch not in _B64:
            return f"illegal base64 data at input byte {i}"
    if len(s) % 4 or len(s) - len(body) > 2:
        return f"illegal base64 data at input byte {len(s) - len(s) % 4 if len(s) % 4 else len(body)}"
    return None


def full_name(model: str) -> str:
    return model if ":" in model else model + ":latest"


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


class NDJSONEncoder(Encoder):
    def __init__(self, model: str, chat: bool, prompt_tokens: int):
        self.model = model
        self._model_json = json.dumps(model, ensure_ascii=False)
        self.chat = chat
        self.prompt_tokens = prompt_tokens
        self.t0 = time.perf_counter_ns()

    def start(self) -> bytes | None:
        lines = []
        for piece in reasoning_of(self.model):
            head = {"model": self.model, "created_at": now_iso()}
            if self.chat:
                head["message"] = {"role": "assistant", "content": "", "thinking": piece}
            else:
                head.update({"response": "", "thinking": piece})
            lines.append(self.line({**head, "done": False}))
        return b"".join(lines) or None

    def line(self, obj: dict) -> bytes:
        return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")

    def piece(self, text: str) -> bytes:
        # Hand-assembled (same bytes as json.dumps of the dict) to keep count-N fast.
        content = json.dumps(text, ensure_ascii=False)
        if self.chat:
            body = '"message":{"role":"assistant","content":' + content + "}"
        else:
            body = '"response":' + content
        line = (
            '{"model":' + self._model_json + ',"created_at":"' + now_iso() + '",' + body + ',"done":false}\n'
        )
        return line.encode("utf-8")

    def final(self, plan: Plan, sent: int, content: str = "", reason: str | None = None) -> dict:
        total = max(time.perf_counter_ns() - self.t0, 1000)
        obj = {"model": self.model, "created_at": now_iso()}
        thinking = "".join(reasoning_of(self.model)) if content else ""
        if self.chat:
            obj["message"] = {"role": "assistant", "content": content}
            if thinking:
                obj["message"]["thinking"] = thinking
        else:
            obj["response"] = content
            if thinking:
                obj["thinking"] = thinking
        obj.update({"done": True, "done_reason": reason or plan.finish})
        if not self.chat:
            obj["context"] = [1, 2, 3]
        obj.update(
            {
                "total_duration": total,
                "load_duration": total // 10,
                "prompt_eval_count": self.prompt_tokens,
                "prompt_eval_duration": total // 5,
                "eval_count": sent,
                "eval_duration": total // 2,
            }
        )
        return obj

    def finish(self, plan: Plan, sent: int) -> bytes:
        return self.line(self.final(plan, sent))

    def error(self, fault: str) -> bytes:
        return self.line({"error": MIDSTREAM_ERROR})


class OllamaServer(LoopbackServer):
    default_models = ("test-model:latest", "vision-model:latest")
    generation_paths = ("/api/generate", "/api/chat")
    version = "0.12.3"

    def setup_routes(self) -> None:
        for method in ("GET", "HEAD"):
            self.route(method, "/", self.root)
            self.route(method, "/api/version", self.get_version)
            self.route(method, "/api/tags", self.tags)
        self.route("GET", "/api/ps", self.ps)
        self.route("POST", "/api/show", self.show)
        self.route("POST", "/api/generate", self.generate)
        self.route("POST", "/api/chat", self.chat)

    def not_found(self, ex: Exchange) -> None:
        ex.send_text("404 page not found", 404)

    def planned_failure(self, ex: Exchange, status: int, headers: dict, code: str | None) -> None:
        msg = {
            429: "too many requests",
            404: "model not found",
            401: "unauthorized",
            503: "server busy, please try again.  maximum pending requests exceeded",
        }.get(status, code or "internal server error")
        ex.send_json({"error": msg}, status, headers)

    def knows_model(self, model: str) -> bool:
        return is_special_model(model) or full_name(model) in {full_name(m) for m in self.models}

    # -- descriptions
    def details(self, name: str) -> dict:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        }

    def tag_entry(self, name: str) -> dict:
        full = full_name(name)
        return {
            "name": full,
            "model": full,
            "modified_at": "2025-10-01T12:00:00.000000Z",
            "size": 2019393189,
            "digest": "a80c4f17acd5" + "0" * 52,
            "details": self.details(full),
        }

    def capabilities(self, name: str) -> list[str]:
        caps = ["completion", "tools"]
        if "vision" in name:
            caps.append("vision")
        return caps

    # -- simple routes
    def root(self, ex: Exchange) -> None:
        ex.send_text("Ollama is running")

    def get_version(self, ex: Exchange) -> None:
        ex.send_json({"version": self.version})

    def tags(self, ex: Exchange) -> None:
        ex.send_json({"models": [self.tag_entry(m) for m in self.models]})

    def ps(self, ex: Exchange) -> None:
        loaded = []
        for m in self.models[:1]:
            e = self.tag_entry(m)
            loaded.append(
                {
                    "name": e["name"],
                    "model": e["model"],
                    "size": e["size"],
                    "digest": e["digest"],
                    "details": e["details"],
                    "expires_at": "2099-01-01T00:00:00Z",
                    "size_vram": e["size"],
                    "context_length": 4096,
                }
            )
        ex.send_json({"models": loaded})

    def body_error(self, ex: Exchange) -> dict | None:
        """Parse/validate the common request fields; None when answered."""
        if not ex.req.body:
            ex.send_json({"error": "missing request body"}, 400)
            return None
        body = ex.json
        if not isinstance(body, dict):
            ex.send_json({"error": "invalid character looking for beginning of value"}, 400)
            return None
        return body

    def show(self, ex: Exchange) -> None:
        body = self.body_error(ex)
        if body is None:
            return
        name = body.get("model") or body.get("name") or ""
        if not name:
            ex.send_json({"error": "model is required"}, 400)
            return
        if full_name(name) not in {full_name(m) for m in self.models}:
            ex.send_json({"error": f"model '{name}' not found"}, 404)
            return
        ex.send_json(
            {
                "license": "",
                "modelfile": f"FROM {full_name(name)}\n",
                "parameters": 'stop "<|eot_id|>"',
                "template": "{{ .Prompt }}",
                "system": "",
                "details": self.details(name),
                "model_info": {
                    "general.architecture": "llama",
                    "general.parameter_count": 3212749888,
                    "llama.context_length": 131072,
                },
                "capabilities": self.capabilities(name),
                "modified_at": "2025-10-01T12:00:00.000000Z",
            }
        )

    # -- generation
    def generate(self, ex: Exchange) -> None:
        self._generate(ex, chat=False)

    def chat(self, ex: Exchange) -> None:
        self._generate(ex, chat=True)

    def _generate(self, ex: Exchange, chat: bool) -> None:
        body = self.body_error(ex)
        if body is None:
            return
        model = body.get("model") or ""
        if not model:
            ex.send_json({"error": "model is required"}, 400)
            return
        options = body.get("options") or {}
        if not isinstance(options, dict):
            ex.send_json({"error": "json: cannot unmarshal options"}, 400)
            return
        if chat:
            messages = body.get("messages") or []
            if not isinstance(messages, list):
                ex.send_json({"error": "json: cannot unmarshal messages"}, 400)
                return
            images = [img for m in messages if isinstance(m, dict) for img in (m.get("images") or [])]
            text = next(
                (
                    m.get("content") or ""
                    for m in reversed(messages)
                    if isinstance(m, dict) and m.get("role") == "user"
                ),
                "",
            )
            prompt_words = sum(
                len(str(m.get("content") or "").split()) for m in messages if isinstance(m, dict)
            )
        else:
            images = body.get("images") or []
            text = body.get("prompt") or ""
            prompt_words = len(text.split())
        for img in images:
            err = base64_error(img)
            if err:
                ex.send_json({"error": err}, 400)
                return
        if not self.knows_model(model):
            ex.send_json({"error": f"model '{model}' not found"}, 404)
            return
        stream = body.get("stream", True) is not False
        enc = NDJSONEncoder(model, chat, prompt_words)
        calls = planned_calls(self, body) if chat else None
        if calls is not None:
            self.send_calls(ex, enc, calls, stream)
            return
        limit = options.get("num_predict")
        limit = limit if isinstance(limit, int) else None
        fmt = body.get("format")
        if fmt not in (None, ""):
            kind = "json" if fmt == "json" else "schema" if isinstance(fmt, dict) else None
            if kind is None:
                reason = f"invalid format: {json.dumps(fmt)}; expected \"json\" or a valid JSON Schema"
                ex.send_json({"error": reason}, 400)
                return
            if kind in self.refuse_formats:
                struct = "ChatRequest" if chat else "GenerateRequest"
                ex.send_json({"error": f"json: cannot unmarshal {'object' if kind == 'schema' else 'string'} "
                                       f"into Go struct field {struct}.format of type string"}, 400)
                return
            plan = self.json_plan(model, text, fmt if kind == "schema" else None, limit)
        elif chat and tool_text(body.get("messages") or []) is not None and not self.reply:
            plan = Plan(model, split_pieces(tool_text(body["messages"]) or ""))
        else:
            plan = self.plan(model, text, limit)
        if not chat and not text and not images:  # empty prompt only loads the model
            final = enc.final(plan, 0, reason="load")
            for k in ("prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration", "context"):
                final.pop(k, None)
            ex.send_json(final, headers=None)
            return
        if stream:
            s = ex.stream("application/x-ndjson", mixed=not plan.fast)
            self.drive(s, plan, enc)
            return
        if plan.fault == "fail-midstream":
            ex.send_json({"error": MIDSTREAM_ERROR}, 500)
            return
        data = json.dumps(enc.final(plan, len(plan.pieces), plan.text), ensure_ascii=False).encode("utf-8")
        if not self.nonstream_fault(ex, plan, data, "application/json; charset=utf-8"):
            ex.send(200, data, "application/json; charset=utf-8")

    def send_calls(self, ex: Exchange, enc: NDJSONEncoder, calls: list, stream: bool) -> None:
        """Answer with whole tool calls: a line each, then the done line (``done_reason: "stop"``)."""
        made = ollama_calls(calls, ids_for(calls))
        plan = Plan(enc.model, [])
        if not stream:
            final = enc.final(plan, len(made) * 10)
            final["message"]["tool_calls"] = made
            ex.send_json(final)
            return
        s = ex.stream("application/x-ndjson")
        for call in made:
            message = {"role": "assistant", "content": "", "tool_calls": [call]}
            line = {"model": enc.model, "created_at": now_iso(), "message": message, "done": False}
            s.event(enc.line(line))
        s.flush()
        s.chunk(enc.finish(plan, len(made) * 10))
        s.end()
