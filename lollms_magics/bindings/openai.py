"""Any OpenAI-compatible server: OpenAI, vLLM, llama.cpp server, LM Studio, Ollama's /v1.

Streams ``/v1/chat/completions`` as server-sent events and reads each event
with ``json.loads`` (no model object per piece). It tolerates the local
servers' deviations: ``:`` keep-alive comments, ``\\r\\n`` line ends,
llama.cpp's ``error:`` line, flat vLLM errors and FastAPI ``detail``.
Reasoning that servers send apart (``reasoning_content`` from vLLM,
llama.cpp and DeepSeek, ``reasoning`` from others) is kept apart from the
answer in ``Response.reasoning``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import httpx

from ..errors import BadRequestError, ProtocolError
from ..response import Response
from ..schema import GenerationRequest, Message, ModelInfo
from .base import Probe
from .http import HTTPBinding, ReportedError, normalize_host

__all__ = ["OpenAIBinding", "chat_messages"]

OPENAI_DEFAULT_MODEL = "gpt-4o-mini"  # api.openai.com lists models no chat can use first

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
# OpenAI's reasoning models refuse max_tokens and want max_completion_tokens.
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)", re.IGNORECASE)


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


class OpenAIBinding(HTTPBinding):
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
    auto_priority = 30
    end_marker = b"[DONE]"
    answer_kind = "a chat completion"
    include_usage = True

    def _normalize_host(self, host: str) -> str:
        host = normalize_host(host)
        if not httpx.URL(host).path.strip("/"):
            host += "/v1"
        return host

    def _is_openai(self) -> bool:
        return httpx.URL(self.host).host.endswith("openai.com")

    def _option_map(self) -> Mapping[str, str]:
        if self._is_openai():
            return _STANDARD
        return {**_STANDARD, **_LOCAL_EXTRAS}

    @classmethod
    def probe(cls, client: httpx.Client) -> Probe | None:
        """An OpenAI-compatible server is chosen only when the user configured one."""
        base_url = os.environ.get("OPENAI_BASE_URL")
        if base_url:
            return Probe(
                base_url, os.environ.get("OPENAI_MODEL"), f"OPENAI_BASE_URL is set, using {base_url}"
            )
        if cls.env_key():  # stripped: a variable holding only a line end is not a key
            model = os.environ.get("OPENAI_MODEL") or OPENAI_DEFAULT_MODEL
            return Probe(None, model, f"OPENAI_API_KEY is set, using OpenAI's {model}")
        return None

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

    # -- the request -----------------------------------------------------------

    def _body(self, request: GenerationRequest, model: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model or "", "messages": chat_messages(request.messages)}
        body.update(self._wire_options(request.options))
        if "max_tokens" in body and self._wants_completion_tokens(model):
            body["max_completion_tokens"] = body.pop("max_tokens")
        body["stream"] = request.stream
        if request.stream and self.include_usage:
            body["stream_options"] = {"include_usage": True}
        return body

    def _wants_completion_tokens(self, model: str | None) -> bool:
        return self._is_openai() and bool(model and _REASONING_MODEL.match(model))

    def _call(self, request: GenerationRequest, response: Response) -> tuple[str, str, Any]:
        model = request.model or self._default_model()
        response.model = model
        return "POST", "/chat/completions", self._body(request, model)

    def _open(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            return super()._open(method, path, body)
        except BadRequestError as exc:
            # A reasoning model we did not recognise by name: say it its way, once.
            if isinstance(body, dict) and "max_tokens" in body and "max_completion_tokens" in str(exc):
                body = {**body, "max_completion_tokens": body["max_tokens"]}
                del body["max_tokens"]
                return super()._open(method, path, body)
            raise

    # -- the answer ------------------------------------------------------------

    def _on_event(self, event: Any, response: Response) -> str | None:
        if event.get("error"):
            raise ReportedError(_message_of(event))
        choices = event.get("choices")
        text = None
        if choices:
            choice = choices[0]
            delta = choice.get("delta")
            if delta:
                text = delta.get("content")
                if text is None or len(delta) > 1:  # more than the content: reasoning, a role...
                    reasoning = delta.get("reasoning") or delta.get("reasoning_content")
                    if reasoning:
                        response.add_reasoning(reasoning)
            reason = choice.get("finish_reason")
            if reason is None:
                return text  # a plain piece of text: nothing more to read
            response.finish_reason = reason
        usage = event.get("usage")
        if usage:
            self._read_usage(usage, response)
        return text

    def _on_body(self, data: Any, response: Response) -> str:
        choice = data["choices"][0]
        message = choice["message"]
        reasoning = message.get("reasoning") or message.get("reasoning_content")
        if reasoning:
            response.add_reasoning(str(reasoning))
        response.finish_reason = choice.get("finish_reason")
        self._read_usage(data.get("usage"), response)
        return str(message.get("content") or "")

    def _stream_complete(self, response: Response) -> bool:
        # Some servers end without "[DONE]" after a proper finish chunk.
        return response.finish_reason is not None

    @staticmethod
    def _read_usage(usage: Any, response: Response) -> None:
        if isinstance(usage, dict):
            response.prompt_tokens = usage.get("prompt_tokens")
            response.completion_tokens = usage.get("completion_tokens")

    # -- tokens (for summaries) ---------------------------------------------------

    # Tokenizers beside /v1: llama.cpp's server, then llama-cpp-python's (path, text field).
    _tokenize_routes: tuple[tuple[str, str], ...] = (("/tokenize", "content"), ("/extras/tokenize", "input"))

    def tokenize(self, text: str) -> list[int] | None:
        """The server's tokens for ``text`` (llama.cpp or llama-cpp-python), else None.

        The route that answered is remembered; a server with neither (OpenAI,
        vLLM, LM Studio) is asked once per binding, then never again.
        """
        routes: tuple[tuple[str, str], ...] = getattr(self, "_tokenize_found", self._tokenize_routes)
        root = self.host[: -len("/v1")] if self.host.endswith("/v1") else self.host
        for path, field in () if self._is_openai() else routes:
            try:
                reply = self.client.post(root + path, json={field: text}, headers=self._headers())
                tokens = reply.json().get("tokens") if reply.status_code == 200 else None
            except (httpx.HTTPError, ValueError, AttributeError):
                tokens = None
            if isinstance(tokens, list) and all(isinstance(t, int) for t in tokens):
                self._tokenize_found: tuple[tuple[str, str], ...] = ((path, field),)
                return tokens
        self._tokenize_found = ()
        return None


def _message_of(event: dict[str, Any]) -> str:
    error = event.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
