"""Any OpenAI-compatible server: OpenAI, vLLM, llama.cpp server, LM Studio, Ollama's /v1.

Streams ``/v1/chat/completions`` as server-sent events and reads each event
with ``json.loads`` (no model object per piece). It tolerates the local
servers' deviations: ``:`` keep-alive comments, ``\\r\\n`` line ends,
llama.cpp's ``error:`` line, flat vLLM errors and FastAPI ``detail``.
Reasoning that servers send apart (``reasoning_content`` from vLLM,
llama.cpp and DeepSeek, ``reasoning`` from others) is kept apart from the
answer in ``Response.reasoning``.

An answer asked for with a schema goes with a ``response_format``, the
strongest the server takes (:data:`RESPONSE_FORMATS`): OpenAI's
``json_schema`` (vLLM, llama.cpp's server, LM Studio, Ollama's /v1 and the new
LoLLMs server take it too), then ``json_object`` with the schema beside it
(llama-cpp-python's server, whose grammar needs it there), then plain
``json_object``, then nothing (the instructions in the prompt remain). A
server that refuses one (a 400 or 422 naming ``response_format``, or
llama-cpp-python's 500 quoting its validation error) is asked again with the
next, and its host is remembered.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from typing import Any

import httpx

from ..errors import BadRequestError, ProtocolError, ServerError
from ..response import Response
from ..schema import GenerationRequest, Message, ModelInfo, ToolCall
from .base import Probe
from .http import HTTPBinding, ReportedError, normalize_host

__all__ = ["RESPONSE_FORMATS", "OpenAIBinding", "chat_messages", "forget_response_formats", "response_format"]

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

# The ways to ask for an answer following a schema, strongest first.
RESPONSE_FORMATS = ("json_schema", "json_object+schema", "json_object", "none")
# host -> the index in RESPONSE_FORMATS of the strongest one the server took (shared by the kernel).
_formats_taken: dict[str, int] = {}
# Words of a refusal that is about response_format (and not, say, about the model).
_ABOUT_FORMAT = ("response_format", "json_schema", "json_object")


def forget_response_formats() -> None:
    """Forget which response_format each server took (the next schema answer tries the strongest again)."""
    _formats_taken.clear()


def response_format(kind: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The ``response_format`` of one of :data:`RESPONSE_FORMATS` for ``schema`` (None for ``"none"``).

    ``strict`` is set only when the schema meets OpenAI's strict rules (every
    object closed, every property required): OpenAI refuses other schemas in
    strict mode, and that refusal would not say the server cannot do it.
    """
    if kind == "json_schema":
        name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title") or "answer"))[:64] or "answer"
        spec: dict[str, Any] = {"name": name, "schema": schema}
        if strict_compatible(schema):
            spec["strict"] = True
        return {"type": "json_schema", "json_schema": spec}
    if kind == "json_object+schema":
        return {"type": "json_object", "schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


def strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict structured outputs take ``schema``: every object closed and fully required."""
    if isinstance(schema, list):
        return all(strict_compatible(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        closed = schema.get("additionalProperties") is False
        if not closed or set(schema.get("required") or []) != set(properties):
            return False
    return all(strict_compatible(v) for k, v in schema.items() if k not in ("enum", "const", "default"))


def chat_messages(messages: list[Message], tool_names: bool = True) -> list[dict[str, Any]]:
    """Messages in OpenAI's shape; images become ``image_url`` parts with data URLs.

    An assistant message that asked for tools carries its ``tool_calls``
    (arguments as JSON strings); a tool's result is a ``"tool"`` message with
    the ``tool_call_id`` it answers, and the tool's ``name`` when
    ``tool_names`` (local servers' chat templates read it; api.openai.com
    refuses a field it does not know).
    """
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.images:
            parts: list[dict[str, Any]] = [{"type": "text", "text": m.content}]
            parts += [{"type": "image_url", "image_url": {"url": i.data_url}} for i in m.images]
            out.append({"role": m.role, "content": parts})
        elif m.tool_calls:
            calls = [c.wire() for c in m.tool_calls]
            out.append({"role": m.role, "content": m.content, "tool_calls": calls})
        elif m.role == "tool":
            result = {"role": "tool", "content": m.content, "tool_call_id": m.tool_call_id or ""}
            if tool_names and m.name:
                result["name"] = m.name
            out.append(result)
        else:
            out.append({"role": m.role, "content": m.content})
    return out


@functools.lru_cache(maxsize=64)
def _openai_host(host: str) -> bool:
    """Whether ``host`` is OpenAI's own API (parsed once per host: it is asked twice per request)."""
    return httpx.URL(host).host.endswith("openai.com")


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
    supports_tools = True

    def _normalize_host(self, host: str) -> str:
        host = normalize_host(host)
        if not httpx.URL(host).path.strip("/"):
            host += "/v1"
        return host

    def _is_openai(self) -> bool:
        return _openai_host(self.host)

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
        messages = chat_messages(request.messages, not self._is_openai())
        body: dict[str, Any] = {"model": model or "", "messages": messages}
        body.update(self._wire_options(request.options))
        if "max_tokens" in body and self._wants_completion_tokens(model):
            body["max_completion_tokens"] = body.pop("max_tokens")
        body["stream"] = request.stream
        if request.stream and self.include_usage:
            body["stream_options"] = {"include_usage": True}
        if request.tools:
            body["tools"] = request.tools
            # "auto" is OpenAI's default with tools, but llama-cpp-python's server
            # takes a missing choice as "none": said outright, every server calls.
            body["tool_choice"] = request.tool_choice if request.tool_choice is not None else "auto"
        if request.schema is not None:
            kind = RESPONSE_FORMATS[_formats_taken.get(self.host, 0)]
            wanted = response_format(kind, request.schema)
            if wanted is not None:
                body["response_format"] = wanted
        return body

    def _wants_completion_tokens(self, model: str | None) -> bool:
        return self._is_openai() and bool(model and _REASONING_MODEL.match(model))

    def _call(self, request: GenerationRequest, response: Response) -> tuple[str, str, Any]:
        model = request.model or self._default_model()
        response.model = model
        return "POST", "/chat/completions", self._body(request, model)

    def _send(self, request: GenerationRequest, response: Response) -> httpx.Response:
        method, path, body = self._call(request, response)
        while True:
            try:
                return self._open(method, path, body)
            except (BadRequestError, ServerError) as exc:
                weaker = self._weaker_format(request, body, exc)
                if weaker is None:
                    raise
                body, note = weaker
                response.notes.append(note)

    def _weaker_format(
        self, request: GenerationRequest, body: Any, refusal: BadRequestError | ServerError
    ) -> tuple[dict[str, Any], str] | None:
        """After a refusal of ``body``'s response_format: the body with the next weaker one, and a note.

        A refusal is a 4xx naming response_format, or the 500 of llama-cpp-python's
        server, which reports its request model's validation error that way (after
        the usual retries of a 5xx, once per server: the next weaker one is remembered).
        """
        if request.schema is None or not isinstance(body, dict) or "response_format" not in body:
            return None
        reason = str(refusal).lower()
        if not any(word in reason for word in _ABOUT_FORMAT):
            return None
        sent = body["response_format"]
        kind = "json_schema" if sent.get("type") == "json_schema" else (
            "json_object+schema" if "schema" in sent else "json_object"
        )
        level = RESPONSE_FORMATS.index(kind) + 1
        # A schema OpenAI finds invalid says nothing of what the server can do: not remembered.
        remembered = "invalid schema" not in reason
        if remembered:
            _formats_taken[self.host] = max(level, _formats_taken.get(self.host, 0))
        body = {k: v for k, v in body.items() if k != "response_format"}
        weaker = response_format(RESPONSE_FORMATS[level], request.schema)
        if weaker is not None:
            body["response_format"] = weaker
        then = f"asked with {RESPONSE_FORMATS[level]}" if weaker is not None else "asked without one"
        memo = " (remembered for this server)" if remembered else ""
        return body, f"the server refused response_format {kind}; {then}{memo}"

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
                if text is None or len(delta) > 1:  # more than the content: reasoning, a role, calls...
                    reasoning = delta.get("reasoning") or delta.get("reasoning_content")
                    if reasoning:
                        response.add_reasoning(reasoning)
                    calls = delta.get("tool_calls")
                    if calls:
                        _add_call_deltas(response, calls)
            reason = choice.get("finish_reason")
            if reason is None:
                return text  # a plain piece of text: nothing more to read
            response.finish_reason = reason
            _end_calls(response)
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
        for index, call in enumerate(message.get("tool_calls") or ()):
            function = call["function"]
            response.tool_calls.append(
                ToolCall.parse(call.get("id") or f"call_{index}", function["name"], function.get("arguments"))
            )
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


def _add_call_deltas(response: Response, deltas: list[Any]) -> None:
    """Assemble streamed calls by ``index``: the id and name come once, the arguments in pieces.

    A server that sends each call whole in one delta (vLLM, some proxies) fits too.
    """
    # The pieces wait on the response itself (one answer, one stream), until the finish.
    parts: dict[int, list[str]] = response.__dict__.setdefault("_call_parts", {})
    for position, delta in enumerate(deltas):
        index = delta.get("index", position)
        part = parts.setdefault(index, ["", "", ""])  # id, name, arguments
        function = delta.get("function") or {}
        if delta.get("id"):
            part[0] = delta["id"]
        name = function.get("name")
        if name and name != part[1]:  # a server repeating the whole name is not doubled
            part[1] += name
        arguments = function.get("arguments")
        if arguments:
            part[2] += arguments if isinstance(arguments, str) else json.dumps(arguments)


def _end_calls(response: Response) -> None:
    """At the finish: the assembled calls into ``response.tool_calls``, in index order."""
    parts: dict[int, list[str]] = response.__dict__.pop("_call_parts", {})
    for index in sorted(parts):
        call_id, name, arguments = parts[index]
        response.tool_calls.append(ToolCall.parse(call_id or f"call_{index}", name, arguments))


def _message_of(event: dict[str, Any]) -> str:
    error = event.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
