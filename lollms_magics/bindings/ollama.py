"""Ollama's native API: ``/api/chat`` (or ``/api/generate``) streamed as NDJSON.

Every line is checked for an ``error`` key before its text is read, since
Ollama reports a failure during generation as one more line with status 200.
Images travel as raw base64, without a ``data:`` prefix.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import httpx

from ..errors import ProtocolError
from ..response import Response
from .base import Binding, GenerationRequest, ModelInfo, normalize_host

__all__ = ["OllamaBinding"]

DEFAULT_PORT = 11434


class OllamaBinding(Binding):
    """A binding for an Ollama server.

    The host comes from ``OLLAMA_HOST`` (with or without scheme and port:
    ``0.0.0.0``, ``myhost:8000``, ``https://example.org``), else
    ``http://127.0.0.1:11434``. ``api="generate"`` uses ``/api/generate``
    for single prompts instead of ``/api/chat``; ``keep_alive`` is passed on.
    """

    name = "ollama"
    default_host = f"http://127.0.0.1:{DEFAULT_PORT}"
    host_env = "OLLAMA_HOST"
    start_hint = "start it with `ollama serve`, or set OLLAMA_HOST / --host to where it runs"
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

    def _list_models(self) -> list[ModelInfo]:
        data = self._get_json("/api/tags")
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, list):
            raise self._broken_json("/api/tags did not return a model list")
        return [
            ModelInfo(str(m["name"]), {k: v for k, v in m.items() if k != "name"})
            for m in models
            if isinstance(m, dict) and "name" in m
        ]

    def _broken_json(self, message: str) -> ProtocolError:
        return ProtocolError(
            f"{self.name} at {self.host}: {message}; is this an Ollama server?", binding=self.name
        )

    def _body(self, request: GenerationRequest, model: str | None) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"model": model, "stream": request.stream}
        messages = request.messages
        if self.api == "generate" and messages[-1].role == "user" and len(
            [m for m in messages if m.role != "system"]
        ) == 1:
            path = "/api/generate"
            body["prompt"] = messages[-1].content
            if messages[0].role == "system":
                body["system"] = messages[0].content
            if messages[-1].images:
                body["images"] = [i.b64 for i in messages[-1].images]
        else:
            path = "/api/chat"
            body["messages"] = [
                {"role": m.role, "content": m.content, "images": [i.b64 for i in m.images]}
                if m.images
                else {"role": m.role, "content": m.content}
                for m in messages
            ]
        options = self._wire_options(request.options)
        if options:
            body["options"] = options
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        return path, body

    def _generate(self, request: GenerationRequest, response: Response) -> Iterator[str]:
        # One generator for the whole read, so each piece crosses a single frame.
        model = request.model or self._default_model()
        response.model = model
        path, body = self._body(request, model)
        chat = path == "/api/chat"
        http = self._open("POST", path, body)
        try:
            with self._reading(http, answer=response):
                if not request.stream:
                    http.read()
                    yield self._text_of(self._parse(http.text, http), chat, response, http)
                    return
                loads = json.loads
                for line in http.iter_lines():
                    if not line:
                        continue
                    try:
                        event = loads(line)
                    except ValueError:
                        raise self._broken("the server sent a line that is not JSON", http) from None
                    try:
                        if "error" in event:
                            raise self._broken(f"the server reported an error: {event['error']}", http)
                        text = event["message"].get("content") if chat else event.get("response")
                        if text:
                            yield text
                        if event.get("done"):
                            self._finish(event, response)
                            return
                    except (KeyError, TypeError, AttributeError):  # JSON, but not a stream line
                        raise self._broken("the server sent a line that is not a chat chunk", http) from None
        finally:
            http.close()
        raise self._broken("the stream ended before the answer was complete", http)

    def _parse(self, line: str, http: httpx.Response) -> dict[str, Any]:
        try:
            event = json.loads(line)
        except ValueError:
            raise self._broken("the server sent a line that is not JSON", http) from None
        if not isinstance(event, dict):
            raise self._broken("the server sent a line that is not a JSON object", http)
        return event

    def _text_of(self, event: dict[str, Any], chat: bool, response: Response, http: httpx.Response) -> str:
        if event.get("error"):
            raise self._broken(f"the server reported an error: {event['error']}", http)
        self._finish(event, response)
        value = event.get("message" if chat else "response")
        text = value.get("content") if isinstance(value, dict) else value
        return text or ""

    @staticmethod
    def _finish(event: dict[str, Any], response: Response) -> None:
        if not event.get("done"):
            return
        response.finish_reason = event.get("done_reason")
        response.prompt_tokens = event.get("prompt_eval_count")
        response.completion_tokens = event.get("eval_count")
