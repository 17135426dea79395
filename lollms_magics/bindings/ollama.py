"""Ollama's native API: ``/api/chat`` (or ``/api/generate``) streamed as NDJSON.

Every line is checked for an ``error`` key before its text is read, since
Ollama reports a failure during generation as one more line with status 200.
Images travel as raw base64, without a ``data:`` prefix. A thinking model's
reasoning (``message.thinking``, or ``thinking`` from ``/api/generate``) is
kept apart from the answer.

Tools go as ``tools`` (OpenAI's shape, which Ollama takes); the model's calls
come whole, in ``message.tool_calls`` of one or more lines (arguments as an
object, an ``id`` from Ollama 0.12, none before: one is made up), and a
tool's result goes back as a ``"tool"`` message with ``tool_name`` and
``tool_call_id``. Ollama has no ``tool_choice``: ``"none"`` is honoured by
not sending the tools, other choices are left to the model.

An answer asked for with a schema sends it as ``format`` (Ollama 0.5 and
later turn it into a grammar); a server that refuses it (older ones took only
``"json"``) is asked with ``format: "json"``, then without, and its host is
remembered.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from ..errors import BadRequestError, ProtocolError
from ..response import Response
from ..schema import GenerationRequest, Message, ModelInfo, ToolCall
from .base import Probe
from .http import HTTPBinding, ReportedError, normalize_host

__all__ = ["FORMATS", "OllamaBinding", "forget_formats"]

DEFAULT_PORT = 11434
DEFAULT_HOST = f"http://127.0.0.1:{DEFAULT_PORT}"

# How a schema answer is asked for, strongest first; host -> the index of the one the server took.
FORMATS = ("schema", "json", "none")
_formats_taken: dict[str, int] = {}


def forget_formats() -> None:
    """Forget which ``format`` each Ollama server took."""
    _formats_taken.clear()


def _format(kind: str, schema: dict[str, Any]) -> Any:
    return schema if kind == "schema" else "json" if kind == "json" else None


def _chat_message(m: Message) -> dict[str, Any]:
    """One message of ``/api/chat``: images as raw base64, calls with their arguments as objects."""
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.images:
        out["images"] = [i.b64 for i in m.images]
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "function": {"index": i, "name": c.name, "arguments": c.arguments}}
            for i, c in enumerate(m.tool_calls)
        ]
    if m.role == "tool":
        out["tool_name"] = m.name or ""
        if m.tool_call_id:
            out["tool_call_id"] = m.tool_call_id
    return out


def ollama_host() -> str:
    """Where Ollama runs: ``OLLAMA_HOST`` in any of its forms, else the default."""
    env = os.environ.get("OLLAMA_HOST")
    return normalize_host(env, DEFAULT_PORT) if env else DEFAULT_HOST


class OllamaBinding(HTTPBinding):
    """A binding for an Ollama server.

    The host comes from ``OLLAMA_HOST`` (with or without scheme and port:
    ``0.0.0.0``, ``myhost:8000``, ``https://example.org``), else
    ``http://127.0.0.1:11434``. ``api="generate"`` uses ``/api/generate``
    for single prompts instead of ``/api/chat``; ``keep_alive`` is passed on.
    ``ctx_size`` is sent as ``num_ctx``: Ollama's own default window is small.
    """

    name = "ollama"
    default_host = DEFAULT_HOST
    host_env = "OLLAMA_HOST"
    start_hint = "start it with `ollama serve`, or set OLLAMA_HOST / --host to where it runs"
    auto_priority = 20
    framing = "ndjson"
    supports_tools = True
    option_names: ClassVar[Mapping[str, str]] = {
        "n_predict": "num_predict",
        "temperature": "temperature",
        "top_k": "top_k",
        "top_p": "top_p",
        "repeat_penalty": "repeat_penalty",
        "repeat_last_n": "repeat_last_n",
        "seed": "seed",
        "ctx_size": "num_ctx",
        "stop": "stop",
    }

    def __init__(
        self,
        host: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        api: str = "chat",
        keep_alive: str | float | None = None,
        **config: Any,
    ) -> None:
        super().__init__(host, model, api_key, **config)
        if api not in ("chat", "generate"):
            raise ValueError('api must be "chat" or "generate"')
        self.api = api
        self.keep_alive = keep_alive

    def _normalize_host(self, host: str) -> str:
        # Ollama's own rule: no port means 11434 over http (https keeps 443).
        return normalize_host(host, DEFAULT_PORT)

    @classmethod
    def probe(cls, client: httpx.Client) -> Probe | None:
        """Ollama answers ``/api/tags``; it is usable once a model is pulled."""
        host = ollama_host()
        try:
            response = client.get(host + "/api/tags")
            data = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        items = data.get("models") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return None
        names = [str(m["name"]) for m in items if isinstance(m, dict) and "name" in m]
        if not names:
            return Probe(
                host, None, f"Ollama at {host} has no model pulled: run `ollama pull <model>`",
                usable=False,
            )
        count = f"{len(names)} model" + ("s" if len(names) > 1 else "")
        return Probe(host, names[0], f"Ollama at {host} has {count}, using {names[0]}")

    def _list_models(self) -> list[ModelInfo]:
        data = self._get_json("/api/tags")
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, list):
            raise ProtocolError(
                f"{self.name} at {self.host}: /api/tags did not return a model list; "
                "is this an Ollama server?",
                binding=self.name,
            )
        return [
            ModelInfo(str(m["name"]), {k: v for k, v in m.items() if k != "name"})
            for m in models
            if isinstance(m, dict) and "name" in m
        ]

    def _call(self, request: GenerationRequest, response: Response) -> tuple[str, str, Any]:
        model = request.model or self._default_model()
        response.model = model
        body: dict[str, Any] = {"model": model, "stream": request.stream}
        messages = request.messages
        generate = self.api == "generate" and not request.tools
        if generate and len([m for m in messages if m.role != "system"]) == 1:
            path = "/api/generate"
            body["prompt"] = messages[-1].content
            if messages[0].role == "system":
                body["system"] = messages[0].content
            if messages[-1].images:
                body["images"] = [i.b64 for i in messages[-1].images]
        else:
            path = "/api/chat"
            body["messages"] = [_chat_message(m) for m in messages]
            if request.tools and request.tool_choice != "none":
                body["tools"] = request.tools
        options = self._wire_options(request.options)
        if options:
            body["options"] = options
        if request.schema is not None:
            wanted = _format(FORMATS[_formats_taken.get(self.host, 0)], request.schema)
            if wanted is not None:
                body["format"] = wanted
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        return "POST", path, body

    def _send(self, request: GenerationRequest, response: Response) -> httpx.Response:
        method, path, body = self._call(request, response)
        while True:
            try:
                return self._open(method, path, body)
            except BadRequestError as exc:
                if request.schema is None or "format" not in body or "format" not in str(exc).lower():
                    raise
                kind = "schema" if isinstance(body["format"], dict) else "json"
                level = FORMATS.index(kind) + 1
                _formats_taken[self.host] = max(level, _formats_taken.get(self.host, 0))
                body = {k: v for k, v in body.items() if k != "format"}
                weaker = _format(FORMATS[level], request.schema)
                if weaker is not None:
                    body["format"] = weaker
                then = 'asked with format "json"' if weaker is not None else "asked without one"
                response.notes.append(
                    f"the server refused format {kind}; {then} (remembered for this server)"
                )

    def _on_event(self, event: Any, response: Response) -> str | None:
        if "error" in event:
            raise ReportedError(str(event["error"]))
        message = event.get("message")
        if message is not None:  # /api/chat
            text = message.get("content")
            thinking = message.get("thinking")
        else:  # /api/generate
            text = event.get("response")
            thinking = event.get("thinking")
        if thinking:
            response.add_reasoning(thinking)
        if message is not None and message.get("tool_calls"):
            for call in message["tool_calls"]:
                function = call["function"]
                call_id = call.get("id") or f"call_{len(response.tool_calls)}"
                arguments = function.get("arguments")
                response.tool_calls.append(ToolCall.parse(call_id, function["name"], arguments))
        if event.get("done"):
            self._finish(event, response)
        return text  # type: ignore[no-any-return]

    def _on_body(self, data: Any, response: Response) -> str:
        if not isinstance(data, dict):
            raise TypeError("not an object")
        return self._on_event(data, response) or ""

    def _stream_complete(self, response: Response) -> bool:
        return response.finish_reason is not None

    @staticmethod
    def _finish(event: dict[str, Any], response: Response) -> None:
        response.finish_reason = event.get("done_reason") or "stop"
        response.prompt_tokens = event.get("prompt_eval_count")
        response.completion_tokens = event.get("eval_count")
