"""Loopback imitation of an OpenAI-compatible server (OpenAI, vLLM, llama.cpp, LM Studio).

Routes: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions``
(JSON or SSE), ``POST /v1/images/generations`` and ``GET /files/{name}.png`` (the
target of ``url`` image responses).

Knobs besides those of :class:`~tests.servers.base.LoopbackServer`:

* ``crlf`` - SSE lines end with ``\\r\\n`` instead of ``\\n``.
* ``keepalive_comments`` - ``: keep-alive`` comment events before the role
  chunk and every fifth content chunk.
* ``error_style`` - ``"openai"`` (``{"error": {...}}``), ``"vllm"`` (flat
  ``{"object": "error", ...}``) or ``"fastapi"`` (``{"detail": ...}``); applies
  to every error answered before a stream starts.

``response_format`` (``tests/servers/structured.py``): ``json_schema`` with a
``json_schema.name`` and ``.schema``, or ``json_object`` (with llama.cpp's and
llama-cpp-python's ``schema`` beside it) get a JSON answer that follows the
schema. In OpenAI's style a ``json_schema`` whose root is not an object, or
that is ``strict`` without every object closed and fully required, is refused
as OpenAI refuses it, and ``json_object`` needs the word "json" in the
messages. ``refuse_formats`` makes the server refuse a kind, as
``refusal_style`` says: ``"openai"`` (a 400 naming ``response_format``,
OpenAI's words for a model without structured outputs), ``"fastapi"`` (a
pydantic 422), or ``"llama-cpp-python"``: its request model takes only
``text`` and ``json_object``, and its route's error handler turns the
validation error into a 500 whose OpenAI-shaped message quotes it
(``llama_cpp/server/errors.py``); by default the style of ``error_style``.

``tools`` (``tests/servers/tools.py``): with ``tool_script`` set, a request
offering tools is answered with the script's calls, streamed in OpenAI's
deltas or whole, then with the tools' results as text; tool messages that
answer no call, or calls left unanswered, are refused as OpenAI refuses them.
``stream_calls = False`` answers a streamed request whose answer is calls as
llama-cpp-python's server does (``chatml-function-calling`` raises "Automatic
streaming tool choice is not supported" once the stream is open): a 200 whose
event stream ends at once, empty, and the connection closed.

The ``think`` model streams its reasoning first, one ``delta.reasoning_content``
per piece with no ``content`` (llama.cpp's ``common_chat_msg_diff_to_json_oaicompat``,
DeepSeek), ``think-vllm`` in ``delta.reasoning`` (current vLLM, Ollama's /v1);
a whole answer carries it in ``message.reasoning_content`` / ``message.reasoning``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from typing import Any

from .base import (
    Encoder,
    Exchange,
    LoopbackServer,
    Plan,
    base_model_name,
    reasoning_of,
    split_pieces,
    tiny_png,
    word_count,
)
from .images import make_image
from .tools import (
    ids_for,
    openai_call_deltas,
    openai_tool_problem,
    openai_whole_calls,
    planned_calls,
    tool_text,
)

_SIZE_RE = re.compile(r"^\d{2,5}x\d{2,5}$")

_VLLM_TYPES = {
    400: "BadRequestError",
    401: "Unauthorized",
    404: "NotFoundError",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


def message_text(content: Any) -> str:
    """Text of a chat message ``content`` (string or list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def last_user_text(messages: list) -> str:
    for m in reversed(messages or []):
        if isinstance(m, dict) and m.get("role") == "user":
            return message_text(m.get("content"))
    return ""


def bad_image_part(messages: list) -> str | None:
    """Return a reason when an ``image_url`` part is not a base64 data URL."""
    for m in messages or []:
        content = m.get("content") if isinstance(m, dict) else None
        if not isinstance(content, list):
            continue
        for p in content:
            if not isinstance(p, dict) or p.get("type") != "image_url":
                continue
            iu = p.get("image_url")
            url = iu.get("url") if isinstance(iu, dict) else iu
            if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url:
                return "image_url.url must be a data:image/...;base64, URL"
            try:
                base64.b64decode(url.split(";base64,", 1)[1], validate=True)
            except (binascii.Error, ValueError):
                return "image_url.url does not hold valid base64 data"
    return None


class SSEEncoder(Encoder):
    def __init__(self, srv: OpenAIServer, model: str, include_usage: bool, prompt_tokens: int):
        self.srv = srv
        self.nl = "\r\n" if srv.crlf else "\n"
        self.base = {
            "id": "chatcmpl-" + uuid.uuid4().hex[:12],
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_loopback",
        }
        self.include_usage = include_usage
        self.prompt_tokens = prompt_tokens
        self.n = 0
        self._cache: dict[str, bytes] = {}

    def data(self, payload: str) -> str:
        return f"data: {payload}{self.nl}{self.nl}"

    def chunk(self, delta: dict, finish: str | None = None, choices: bool = True, usage=None) -> str:
        obj = dict(self.base)
        obj["choices"] = (
            [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else []
        )
        if self.include_usage:
            obj["usage"] = usage
        return self.data(json.dumps(obj, ensure_ascii=False, separators=self.srv.sse_separators))

    def keepalive(self) -> str:
        return f": keep-alive{self.nl}{self.nl}"

    def start(self) -> bytes:
        text = self.chunk({"role": "assistant", "content": ""})
        field = reasoning_field(self.base["model"])
        text += "".join(self.chunk({field: piece}) for piece in reasoning_of(self.base["model"]))
        if self.srv.keepalive_comments:
            text = self.keepalive() + text
        return text.encode("utf-8")

    def piece(self, text: str) -> bytes:
        data = self._cache.get(text)
        if data is None:
            data = self.chunk({"content": text}).encode("utf-8")
            if len(self._cache) < 256:
                self._cache[text] = data
        self.n += 1
        if self.srv.keepalive_comments and self.n % 5 == 0:
            data = self.keepalive().encode() + data
        return data

    def finish(self, plan: Plan, sent: int) -> bytes:
        out = self.chunk({}, plan.finish)
        if self.include_usage:
            out += self.chunk(
                {},
                choices=False,
                usage={
                    "prompt_tokens": self.prompt_tokens,
                    "completion_tokens": sent,
                    "total_tokens": self.prompt_tokens + sent,
                },
            )
        out += self.data("[DONE]")
        return out.encode("utf-8")

    def error(self, fault: str) -> bytes:
        if fault == "fail-midstream-llamacpp":
            err = json.dumps(
                {"code": 500, "message": "boom", "type": "server_error"}, separators=self.srv.sse_separators
            )
            text = f"error: {err}{self.nl}{self.nl}"
        else:
            text = self.data(
                json.dumps({"error": self.srv.midstream_error}, separators=self.srv.sse_separators)
            )
        return (text + self.data("[DONE]")).encode("utf-8")


def openai_schema_problem(schema: Any, strict: bool) -> str | None:
    """What OpenAI's structured outputs refuse in a schema (the root, and strict mode's rules)."""
    if not isinstance(schema, dict):
        return "'schema' must be an object."
    if schema.get("type") != "object":
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{schema.get('type')}\"'."
    if not strict:
        return None
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if node.get("type") == "object":
            if node.get("additionalProperties") is not False:
                return "In context=(), 'additionalProperties' is required to be supplied and to be false."
            if set(node.get("required") or []) != set(node.get("properties") or {}):
                return ("In context=(), 'required' is required to be supplied and to be an array including "
                        "every key in properties.")
        stack.extend(v for k, v in node.items() if k not in ("enum", "const", "default"))
    return None


def reasoning_field(model: str) -> str:
    return "reasoning" if base_model_name(model) == "think-vllm" else "reasoning_content"


class OpenAIServer(LoopbackServer):
    """OpenAI-compatible ``/v1`` server."""

    default_models = ("test-model", "vision-model")
    generation_paths = ("/v1/chat/completions",)
    midstream_error: dict = {"message": "boom", "type": "server_error", "param": None, "code": None}
    #: tool calls streamed whole, one delta each (the new LoLLMs server), not in pieces
    whole_call_deltas = False
    #: JSON separators inside SSE events (compact like OpenAI / llama.cpp)
    sse_separators: tuple[str, str] = (",", ":")

    def __init__(self, models: list[str] | None = None, api_key: str | None = None):
        super().__init__(models, api_key)
        self.crlf = False
        self.keepalive_comments = False
        self.error_style = "openai"
        self.refusal_style: str | None = None
        self.files: dict[str, bytes] = {}
        self.tool_script: list[list[tuple[str, Any]]] | None = None
        self.stream_calls = True

    def setup_routes(self) -> None:
        self.route("GET", "/v1/models", self.list_models)
        self.route("GET", "/v1/models/*", self.get_model)
        self.route("POST", "/v1/chat/completions", self.chat)
        self.route("POST", "/v1/images/generations", self.images)
        self.route("GET", "/files/*", self.file)

    # -- errors
    def error(
        self,
        ex: Exchange,
        status: int,
        message: str,
        type_: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict | None = None,
    ) -> None:
        if self.error_style == "vllm":
            body = {
                "object": "error",
                "message": message,
                "type": _VLLM_TYPES.get(status, "BadRequestError"),
                "param": param,
                "code": status,
            }
        elif self.error_style == "fastapi":
            body = {"detail": message}
        else:
            body = {
                "error": {
                    "message": message,
                    "type": type_ or "invalid_request_error",
                    "param": param,
                    "code": code,
                }
            }
        ex.send_json(body, status, headers)

    def not_found(self, ex: Exchange) -> None:
        self.error(ex, 404, f"Invalid URL ({ex.req.method} {ex.req.path})")

    def check_auth(self, ex: Exchange) -> bool:
        if not self.api_key or ex.req.path.startswith("/files/"):
            return False
        given = ex.req.headers.get("authorization", "")
        if given == f"Bearer {self.api_key}":
            return False
        self.auth_failure(ex, given)
        return True

    def auth_failure(self, ex: Exchange, given: str) -> None:
        key = given[7:] if given.startswith("Bearer ") else given
        if not key:
            self.error(
                ex,
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
                None,
            )
            return
        masked = key[:3] + "*" * 4 + key[-4:] if len(key) > 8 else "*" * len(key)
        self.error(
            ex,
            401,
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )

    def planned_failure(self, ex: Exchange, status: int, headers: dict, code: str | None) -> None:
        if status == 429 and code == "insufficient_quota":
            self.error(
                ex,
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
                headers=headers,
            )
        elif status == 429:
            self.error(
                ex,
                429,
                "Rate limit reached for requests. Please try again later.",
                "requests",
                code or "rate_limit_exceeded",
                headers=headers,
            )
        elif status >= 500:
            self.error(
                ex,
                status,
                "The server had an error while processing your request.",
                "server_error",
                code,
                headers=headers,
            )
        elif status == 401:
            self.error(
                ex,
                401,
                "Incorrect API key provided.",
                "invalid_request_error",
                code or "invalid_api_key",
                headers=headers,
            )
        elif status == 404:
            self.error(
                ex,
                404,
                "The model does not exist or you do not have access to it.",
                "invalid_request_error",
                code or "model_not_found",
                headers=headers,
            )
        else:
            self.error(
                ex, status, f"Planned failure {status}.", "invalid_request_error", code, headers=headers
            )

    def model_error(self, ex: Exchange, model: str) -> bool:
        """Answer an unusable model name; True when answered."""
        if not model:
            self.error(ex, 400, "you must provide a model parameter", "invalid_request_error", None)
            return True
        if not self.knows_model(model):
            self.error(
                ex,
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
            return True
        return False

    # -- routes
    def model_card(self, name: str) -> dict:
        return {"id": name, "object": "model", "created": 1700000000, "owned_by": "loopback"}

    def list_models(self, ex: Exchange) -> None:
        ex.send_json({"object": "list", "data": [self.model_card(m) for m in self.models]})

    def get_model(self, ex: Exchange) -> None:
        name = ex.req.path[len("/v1/models/") :]
        if name not in self.models:
            self.error(
                ex,
                404,
                f"The model `{name}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        else:
            ex.send_json(self.model_card(name))

    def chat(self, ex: Exchange) -> None:
        body = ex.json
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self.error(
                ex, 400, "'messages' is a required property", "invalid_request_error", None, "messages"
            )
            return
        model = body.get("model") or ""
        if self.model_error(ex, model):
            return
        bad = bad_image_part(body["messages"])
        if bad:
            self.error(
                ex, 400, f"Invalid image: {bad}", "invalid_request_error", "invalid_image_url", "messages"
            )
            return
        problem = openai_tool_problem(body)
        if problem:
            self.error(ex, 400, problem[0], "invalid_request_error", None, problem[1])
            return
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        prompt_tokens = sum(
            word_count(message_text(m.get("content"))) for m in body["messages"] if isinstance(m, dict)
        )
        calls = planned_calls(self, body)
        if calls is not None:
            self.send_calls(ex, body, model, calls, prompt_tokens)
            return
        fmt = body.get("response_format")
        after_tools = tool_text(body["messages"])
        if fmt is not None and fmt != {"type": "text"}:
            refused, schema = self.response_format_error(ex, fmt, body["messages"])
            if refused:
                return
            plan = self.json_plan(model, last_user_text(body["messages"]), schema, limit)
        elif after_tools is not None and not self.reply:
            plan = Plan(model, split_pieces(after_tools))
        else:
            plan = self.plan(model, last_user_text(body["messages"]), limit)
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            enc = SSEEncoder(self, model, usage, prompt_tokens)
            stream = ex.stream(
                "text/event-stream; charset=utf-8", headers={"Cache-Control": "no-cache"}, mixed=not plan.fast
            )
            self.drive(stream, plan, enc)
            return
        if plan.fault in ("fail-midstream", "fail-midstream-llamacpp"):
            self.error(ex, 500, "boom", "server_error", None)
            return
        n = len(plan.pieces)
        obj = {
            "id": "chatcmpl-" + uuid.uuid4().hex[:12],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": plan.text}
                    | ({reasoning_field(model): "".join(reasoning_of(model))} if reasoning_of(model) else {}),
                    "logprobs": None,
                    "finish_reason": plan.finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": n,
                "total_tokens": prompt_tokens + n,
            },
            "system_fingerprint": "fp_loopback",
        }
        data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        if not self.nonstream_fault(ex, plan, data, "application/json"):
            ex.send(200, data, "application/json")

    def send_calls(self, ex: Exchange, body: dict, model: str, calls: list, prompt_tokens: int) -> None:
        """Answer with tool calls, streamed as OpenAI's deltas or whole (``finish_reason: "tool_calls"``)."""
        ids = ids_for(calls)
        if body.get("stream") and not self.stream_calls:
            stream = ex.stream("text/event-stream; charset=utf-8", headers={"Cache-Control": "no-cache"})
            stream.end()
            ex.abort()
            return
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            enc = SSEEncoder(self, model, usage, prompt_tokens)
            stream = ex.stream("text/event-stream; charset=utf-8", headers={"Cache-Control": "no-cache"})
            deltas = openai_call_deltas(calls, ids, whole=self.whole_call_deltas)
            for delta in deltas:
                stream.event(enc.chunk(delta))
            stream.flush()
            stream.chunk(enc.finish(Plan(model, [], finish="tool_calls"), len(deltas)))
            stream.end()
            return
        message = {"role": "assistant", "content": None, "tool_calls": openai_whole_calls(calls, ids),
                   "refusal": None}
        ex.send_json({
            "id": "chatcmpl-" + uuid.uuid4().hex[:12],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(calls) * 10,
                      "total_tokens": prompt_tokens + len(calls) * 10},
            "system_fingerprint": "fp_loopback",
        })

    def response_format_error(self, ex: Exchange, fmt: Any, messages: list) -> tuple[bool, Any]:
        """Check a ``response_format`` as the real servers do: (refused and answered, the schema asked)."""
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "json_schema":
            spec = fmt.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            name = kind
        elif kind == "json_object":
            schema = fmt.get("schema")
            name = "json_object+schema" if schema is not None else "json_object"
        else:
            self.error(ex, 400, f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object' "
                       "and 'json_schema'.", "invalid_request_error", "invalid_value", "response_format.type")
            return True, None
        if name in self.refuse_formats:
            self.refuse_format(ex, name)
            return True, None
        if self.error_style != "openai":
            return False, schema
        if kind == "json_schema":
            schema_name = str(spec.get("name", "")) if isinstance(spec, dict) else ""
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", schema_name):
                param = "response_format.json_schema.name"
                self.error(ex, 400, f"Missing required parameter: '{param}'.",
                           "invalid_request_error", "missing_required_parameter", param)
                return True, None
            problem = openai_schema_problem(schema, bool(spec.get("strict")))
            if problem:
                self.error(ex, 400, f"Invalid schema for response_format '{schema_name}': {problem}",
                           "invalid_request_error", "invalid_json_schema", "response_format")
                return True, None
        elif not any("json" in message_text(m.get("content")).lower() for m in messages
                     if isinstance(m, dict)):
            self.error(ex, 400, "'messages' must contain the word 'json' in some form, to use "
                       "'response_format' of type 'json_object'.", "invalid_request_error", None, "messages")
            return True, None
        return False, schema

    def refuse_format(self, ex: Exchange, name: str) -> None:
        """The refusal of a server that cannot take this kind of ``response_format``."""
        style = self.refusal_style or self.error_style
        detail = {"type": "literal_error", "loc": ("body", "response_format", "type"),
                  "msg": "Input should be 'text' or 'json_object'", "input": name.split("+")[0],
                  "ctx": {"expected": "'text' or 'json_object'"}}
        if name == "json_object+schema":
            detail = {"type": "extra_forbidden", "loc": ("body", "response_format", "schema"),
                      "msg": "Extra inputs are not permitted", "input": {}}
        if style == "llama-cpp-python":
            message = (f"1 validation error:\n  {detail!r}\n\n  File \"llama_cpp/server/app.py\", "
                       "line 376, in create_chat_completion\n    POST /v1/chat/completions")
            ex.send_json({"error": {"message": message, "type": "internal_server_error", "param": None,
                                    "code": None}}, 500)
        elif style == "fastapi":
            ex.send_json({"detail": [{**detail, "loc": list(detail["loc"])}]}, 422)
        elif name == "json_object+schema":
            self.error(ex, 400, "Unknown parameter: 'response_format.schema'.", "invalid_request_error",
                       "unknown_parameter", "response_format.schema")
        else:
            kind = name.split("+")[0]
            self.error(ex, 400, f"Invalid parameter: 'response_format' of type '{kind}' is not supported "
                       "with this model.", "invalid_request_error", None, "response_format")

    def image_model_error(self, ex: Exchange, model: str | None) -> bool:
        return False

    # -- images (OpenAI's documented request rules; see IMAGE_SIZES)
    #: sizes each OpenAI image model accepts; other model names (compatible
    #: servers) take any ``WxH``
    IMAGE_SIZES: dict[str, tuple[str, ...]] = {
        "dall-e-2": ("256x256", "512x512", "1024x1024"),
        "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
        "gpt-image-1": ("1024x1024", "1536x1024", "1024x1536", "auto"),
    }
    #: prompts containing one of these are refused by the "safety system"
    refused_words: tuple[str, ...] = ("forbidden",)
    #: seconds each image takes (the slow mode, for timeouts)
    image_delay = 0.0

    def default_image_model(self) -> str:
        return "dall-e-2"  # OpenAI's default image model

    def image_request_error(self, ex: Exchange, body: dict, model: str) -> bool:
        """OpenAI's refusals before any work; True when answered."""
        bad = self.error
        if model.startswith("gpt-image") and "response_format" in body:
            bad(ex, 400, "Unknown parameter: 'response_format'.", "invalid_request_error",
                "unknown_parameter", "response_format")
            return True
        sizes = self.IMAGE_SIZES.get(model)
        size = body.get("size") or "1024x1024"
        if sizes is not None and size not in sizes:
            bad(ex, 400, f"'{size}' is not one of {list(sizes)} - 'size'", "invalid_request_error", None)
            return True
        if sizes is None and size != "auto" and not _SIZE_RE.match(str(size)):
            bad(ex, 400, f"Invalid size '{size}'.", "invalid_request_error", None, "size")
            return True
        if model == "dall-e-3" and int(body.get("n") or 1) != 1:
            bad(ex, 400, "You must provide n=1 for this model.", "invalid_request_error", None, "n")
            return True
        if any(w in str(body.get("prompt", "")).lower() for w in self.refused_words):
            bad(ex, 400, "Your request was rejected as a result of our safety system. Your prompt may "
                "contain text that is not allowed by our safety system.", "invalid_request_error",
                "content_policy_violation")
            return True
        return False

    def images(self, ex: Exchange) -> None:
        body = ex.json
        if not isinstance(body, dict) or not body.get("prompt"):
            self.error(ex, 400, "'prompt' is a required property", "invalid_request_error", None, "prompt")
            return
        model = body.get("model")
        if self.image_model_error(ex, model):
            return
        name = str(model or self.default_image_model())
        if self.image_request_error(ex, body, name):
            return
        n = int(body.get("n") or 1)
        size = str(body.get("size") or "1024x1024")
        width, height = (1024, 1024) if size == "auto" else (int(v) for v in size.split("x"))
        fmt = "JPEG" if body.get("output_format") in ("jpeg", "jpg") else "PNG"
        if self.image_delay:
            self._stopping.wait(self.image_delay * n)
        pictures = [make_image(width, height, fmt, seed=i) for i in range(n)]
        if name.startswith("gpt-image") or body.get("response_format") == "b64_json":
            data = [{"b64_json": base64.b64encode(p).decode(), "revised_prompt": body["prompt"]}
                    for p in pictures]
        else:
            data = []
            for i, p in enumerate(pictures):
                self.files[f"image-{i}.png"] = p
                data.append({"url": f"{self.url}/files/image-{i}.png", "revised_prompt": body["prompt"]})
        ex.send_json({"created": int(time.time()), "data": data})

    def file(self, ex: Exchange) -> None:
        if ex.req.path.endswith(".png"):
            data = getattr(self, "files", {}).get(ex.req.path.rsplit("/", 1)[-1])
            ex.send(200, data or tiny_png(), "image/png")
        else:
            self.not_found(ex)
