"""Any OpenAI-compatible server: OpenAI, vLLM, llama.cpp server, LM Studio, Ollama's /v1.

Streams ``/v1/chat/completions`` as server-sent events and reads each
``data:`` line with ``json.loads`` (no model object per piece). It tolerates
the local servers' deviations: ``:`` keep-alive comments, ``\\r\\n`` line
ends, llama.cpp's ``error:`` line, flat vLLM errors and FastAPI ``detail``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from ..errors import ProtocolError
from ..response import Response
from .base import Binding, GenerationRequest, Message, ModelInfo, normalize_host

__all__ = ["OpenAIBinding"]

_STANDARD = {
    "n_predict": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop": "stop",
}
# Sampling settings outside OpenAI's schema that llama.cpp, vLLM and LM Studio take.
_LOCAL_EXTRAS = {
    "top_k": "top_k",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
}


def chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Messages in OpenAI's shape; images become ``image_url`` parts with data URLs."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.images:
            parts: list[dict[str, Any]] = [{"type": "text", "text": m.content}]
            parts += [{"type": "image_url", "image_url": {"url": i.data_url}} for i in m.images]
            out.append({"role": m.role, "content": parts})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


class OpenAIBinding(Binding):
    """A binding for OpenAI-compatible ``/v1`` servers.

    The host is the API base URL (``OPENAI_BASE_URL``, default
    ``https://api.openai.com/v1``); a host given without a path gets ``/v1``.
    The key comes from ``OPENAI_API_KEY``. Local servers also receive
    ``top_k``, ``repeat_penalty`` and ``repeat_last_n``; api.openai.com does
    not take them, so there they are reported as not honoured.
    """

    name = "openai"
    default_host = "https://api.openai.com/v1"
    host_env = "OPENAI_BASE_URL"
    key_env = "OPENAI_API_KEY"
    start_hint = "check the URL (OPENAI_BASE_URL or --host) and that the server runs"
    include_usage = True

    def _normalize_host(self, host: str) -> str:
        host = normalize_host(host)
        if not httpx.URL(host).path.strip("/"):
            host += "/v1"
        return host

    def _option_map(self) -> Mapping[str, str]:
        if httpx.URL(self.host).host.endswith("openai.com"):
            return _STANDARD
        return {**_STANDARD, **_LOCAL_EXTRAS}

    def _list_models(self) -> list[ModelInfo]:
        data = self._get_json("/models")
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ProtocolError(
                f"{self.name} at {self.host}: /models did not return a model list; "
                "is this an OpenAI-compatible server?",
                binding=self.name,
                url=self._url("/models"),
            )
        return [
            ModelInfo(str(m["id"]), {k: v for k, v in m.items() if k != "id"})
            for m in items
            if isinstance(m, dict) and "id" in m
        ]

    def _body(self, request: GenerationRequest, model: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model or "", "messages": chat_messages(request.messages)}
        body.update(self._wire_options(request.options))
        body["stream"] = request.stream
        if request.stream and self.include_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    def _generate(self, request: GenerationRequest, response: Response) -> Iterator[str]:
        if request.stream:
            return self._stream(request, response)
        return self._whole(request, response)

    def _send(self, request: GenerationRequest, response: Response) -> httpx.Response:
        model = request.model or self._default_model()
        response.model = model
        return self._open("POST", "/chat/completions", self._body(request, model))

    def _whole(self, request: GenerationRequest, response: Response) -> Iterator[str]:
        http = self._send(request, response)
        try:
            with self._reading(http, answer=response):
                http.read()
        finally:
            http.close()
        try:
            data = http.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise self._broken("the answer is not a chat completion", http) from None
        response.finish_reason = choice.get("finish_reason")
        self._read_usage(data.get("usage"), response)
        yield str(text)

    def _read_usage(self, usage: Any, response: Response) -> None:
        if isinstance(usage, dict):
            response.prompt_tokens = usage.get("prompt_tokens")
            response.completion_tokens = usage.get("completion_tokens")

    def _stream(self, request: GenerationRequest, response: Response) -> Iterator[str]:
        # The whole read loop lives in this one generator, so each piece of text
        # crosses a single generator frame on its way to the Response.
        http = self._send(request, response)
        loads = json.loads
        pending: list[str] = []  # data lines of an event that spans several lines
        finished = False
        try:
            with self._reading(http, answer=response):
                for line in http.iter_lines():
                    if not line:  # half the lines: the blank one that ends each event
                        if not pending:
                            continue
                        payload, pending = "\n".join(pending), []
                        try:
                            event = loads(payload)
                        except ValueError:
                            raise self._broken("the server sent an event that is not JSON", http) from None
                    elif line.startswith("data:"):
                        payload = line[6:] if line[5:6] == " " else line[5:]
                        if pending:
                            pending.append(payload)
                            continue
                        if payload == "[DONE]":
                            finished = True
                            break
                        try:
                            event = loads(payload)
                        except ValueError:
                            pending.append(payload)
                            continue
                    elif line.startswith("error:"):  # llama.cpp's mid-stream error line
                        message = _event_error(line[6:])
                        raise self._broken(f"the server reported an error: {message}", http)
                    else:  # comments (": keep-alive"), event:, id:, retry:
                        continue
                    try:
                        if event.get("error"):
                            message = _event_error(event)
                            raise self._broken(f"the server reported an error: {message}", http)
                        choices = event.get("choices")
                        if choices:
                            choice = choices[0]
                            delta = choice.get("delta")
                            if delta:
                                content = delta.get("content")
                                if content:
                                    yield content
                            reason = choice.get("finish_reason")
                            if reason is None:
                                continue  # a plain piece of text: nothing more to read
                            response.finish_reason = reason
                        usage = event.get("usage")
                        if usage:
                            self._read_usage(usage, response)
                    except (AttributeError, TypeError, IndexError):  # JSON, but not an event
                        raise self._broken("the server sent an event that is not a chunk", http) from None
        finally:
            http.close()
        if not finished and response.finish_reason is None:
            raise self._broken("the stream ended before the answer was complete", http)


def _event_error(payload: Any) -> str:
    """The message of an in-stream error, given as JSON text or an event dict."""
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            return payload.strip() or "unknown error"
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
