"""Unit tests of the binding layer through ``httpx.MockTransport``.

Every test plays the server with a handler function, so the exact wire
payloads, the parsing of each stream format, the error mapping and the
retry policy are checked without a network. Retries are made instant by
replacing ``binding._sleep`` with a list's ``append``, which also records
the waits.
"""

from __future__ import annotations

import base64
import email.utils
import io
import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest

from lollms_magics import get_binding
from lollms_magics.bindings import lollms as lollms_module
from lollms_magics.bindings.http import HTTPBinding as Binding
from lollms_magics.errors import (
    AuthenticationError,
    BadRequestError,
    BindingTimeout,
    InvalidImageError,
    InvalidOptionError,
    ProtocolError,
    RateLimitError,
    ServerError,
    ServerUnreachableError,
    StreamBrokenError,
    UnknownModelError,
    UnsupportedOptionWarning,
)
from tests.servers import tiny_png

pytestmark = pytest.mark.timeout(30)

PNG = tiny_png()
PNG_B64 = base64.b64encode(PNG).decode("ascii")
PNG_URL = "data:image/png;base64," + PNG_B64
SECRET = "sk-this-is-a-very-secret-key-0123456789"

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OLLAMA_HOST", "LOLLMS_HOST", "LOLLMS_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(lollms_module, "_detected", {})


# -- a scripted server ---------------------------------------------------------


class Body(httpx.SyncByteStream):
    """A response body sent piece by piece, that records being closed."""

    def __init__(self, pieces: Iterable[bytes | str], error: Exception | None = None) -> None:
        self.pieces = [p.encode("utf-8") if isinstance(p, str) else p for p in pieces]
        self.error = error
        self.sent = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for piece in self.pieces:
            self.sent += 1
            yield piece
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True


class Server:
    """Records the requests; ``routes`` maps ``"METHOD /path"`` to a handler."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = f"{request.method} {request.url.path}"
        if key not in self.routes:
            return httpx.Response(404, json={"detail": "Not Found"})
        return self.routes[key](request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def bodies(self, path: str) -> list[Any]:
        return [json.loads(r.content) for r in self.requests if r.url.path == path]

    def calls(self, path: str) -> int:
        return sum(1 for r in self.requests if r.url.path == path)


def make(name: str, server: Server, **kw: Any) -> tuple[Binding, list[float]]:
    kw.setdefault("host", "http://llm.test")
    binding = get_binding(name, transport=server.transport, **kw)
    sleeps: list[float] = []
    binding._sleep = sleeps.append  # type: ignore[method-assign]
    return binding, sleeps


def sse(*events: Any, nl: str = "\n", done: bool = True) -> list[str]:
    out = [f"data: {e if isinstance(e, str) else json.dumps(e)}{nl}{nl}" for e in events]
    if done:
        out.append(f"data: [DONE]{nl}{nl}")
    return out


def delta(text: str | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {} if text is None else {"content": text}
    d.update(extra)
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": d,
                                                            "finish_reason": finish}]}


def stream_response(pieces: Iterable[bytes | str], content_type: str = "text/event-stream",
                    error: Exception | None = None, status: int = 200) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": content_type},
                          stream=Body(pieces, error))


def openai_models(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"object": "list", "data": [
        {"id": "gpt-a", "object": "model"}, {"id": "gpt-b", "object": "model"}]})


def openai_ok(request: httpx.Request) -> httpx.Response:
    if json.loads(request.content).get("stream"):
        return stream_response(sse(delta("Hi"), delta(" there", "stop")))
    return httpx.Response(200, json={
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})


def openai_server(chat: Handler = openai_ok) -> Server:
    return Server({"POST /v1/chat/completions": chat, "GET /v1/models": openai_models})


def fails(*responses: httpx.Response, then: Handler = openai_ok) -> Handler:
    """A handler that answers ``responses`` in turn, then ``then``."""
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        return queue.pop(0) if queue else then(request)

    return handler


def error_json(status: int, message: str, code: str | None = None, type_: str = "x",
               headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, json={"error": {
        "message": message, "type": type_, "param": None, "code": code}})


# -- OpenAI: wire payloads ----------------------------------------------------------


def test_openai_payload_maps_every_option() -> None:
    server = openai_server()
    binding, _ = make("openai", server, model="m")
    text = binding.generate(
        "Hello", system="Be kind.", n_predict=12, temperature=0.5, top_k=40, top_p=0.9,
        repeat_penalty=1.1, repeat_last_n=64, seed=7, stop="END",
    ).text
    assert text == "Hi there"
    (body,) = server.bodies("/v1/chat/completions")
    assert body == {
        "model": "m",
        "messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello"}],
        "max_tokens": 12, "temperature": 0.5, "top_p": 0.9, "seed": 7, "stop": ["END"],
        "top_k": 40, "repeat_penalty": 1.1, "repeat_last_n": 64,
        "stream": True, "stream_options": {"include_usage": True},
    }
    assert server.requests[0].url == "http://llm.test/v1/chat/completions"


def test_openai_ctx_size_is_reported_not_sent() -> None:
    server = openai_server()
    binding, _ = make("openai", server, model="m")
    with pytest.warns(UnsupportedOptionWarning, match="ctx_size"):
        response = binding.generate("Hello", ctx_size=4096, temperature=0.1)
    assert response.ignored_options == ["ctx_size"]
    assert response.text == "Hi there"
    (body,) = server.bodies("/v1/chat/completions")
    assert "ctx_size" not in body and "num_ctx" not in body
    assert body["temperature"] == 0.1


def test_openai_com_does_not_get_local_sampling_options() -> None:
    server = Server({"POST /v1/chat/completions": openai_ok})
    binding, _ = make("openai", server, host="https://api.openai.com/v1", model="gpt-4o-mini")
    with pytest.warns(UnsupportedOptionWarning, match="top_k, repeat_penalty"):
        response = binding.generate("Hi", top_k=5, repeat_penalty=1.2, top_p=0.5)
    assert response.ignored_options == ["top_k", "repeat_penalty"]
    assert response.text == "Hi there"
    (body,) = server.bodies("/v1/chat/completions")
    assert "top_k" not in body and "repeat_penalty" not in body and body["top_p"] == 0.5


def test_openai_non_stream_reads_usage() -> None:
    server = openai_server()
    binding, _ = make("openai", server, model="m")
    response = binding.generate("Hello", stream=False)
    assert list(response) == ["Hi there"]
    assert (response.prompt_tokens, response.completion_tokens) == (5, 2)
    assert response.finish_reason == "stop"
    body = server.bodies("/v1/chat/completions")[0]
    assert body["stream"] is False and "stream_options" not in body


def test_openai_chat_messages_pass_through() -> None:
    server = openai_server()
    binding, _ = make("openai", server, model="m")
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"}]
    assert binding.generate(messages).text == "Hi there"
    assert server.bodies("/v1/chat/completions")[0]["messages"] == messages


def test_default_model_is_the_servers_first() -> None:
    server = openai_server()
    binding, _ = make("openai", server)
    response = binding.generate("Hello")
    assert response.text == "Hi there"
    assert server.bodies("/v1/chat/completions")[0]["model"] == "gpt-a"
    assert response.model == "gpt-a"


def _pil_image() -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(PNG))


@pytest.mark.parametrize("kind", ["path", "bytes", "pil", "data_url"])
def test_openai_images_are_data_urls(kind: str, tmp_path: Any) -> None:
    path = tmp_path / "img.png"
    path.write_bytes(PNG)
    image = {"path": str(path), "bytes": PNG, "pil": _pil_image(), "data_url": PNG_URL}[kind]
    server = openai_server()
    binding, _ = make("openai", server, model="m")
    assert binding.generate("What is it?", images=[image]).text == "Hi there"
    (body,) = server.bodies("/v1/chat/completions")
    content = body["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is it?"}
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]).startswith(b"\x89PNG")
    if kind != "pil":
        assert url == PNG_URL


def test_authorization_header_only_with_a_key() -> None:
    server = openai_server()
    binding, _ = make("openai", server, model="m")
    assert binding.generate("x").text
    assert "authorization" not in server.requests[-1].headers
    binding, _ = make("openai", server, model="m", api_key=SECRET)
    assert binding.generate("x").text
    assert server.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in repr(binding)


def test_openai_env_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://vllm.test:8000/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = openai_server()
    binding = get_binding("openai", model="m", transport=server.transport)
    assert binding.host == "http://vllm.test:8000/v1"
    assert binding.generate("x").text == "Hi there"
    request = server.requests[-1]
    assert request.url == "http://vllm.test:8000/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {SECRET}"


def test_openai_default_and_pathless_hosts() -> None:
    assert get_binding("openai").host == "https://api.openai.com/v1"
    assert get_binding("openai", host="localhost:8080").host == "http://localhost:8080/v1"
    assert get_binding("openai", host="http://h:1234/api/v1/").host == "http://h:1234/api/v1"


# -- invalid input fails before any request -------------------------------------------


@pytest.mark.parametrize("options", [
    {"temprature": 0.5},
    {"temperature": "hot"},
    {"temperature": float("nan")},
    {"top_p": 2},
    {"n_predict": 0},
    {"n_predict": 1.5},
    {"seed": True},
    {"stop": [1, 2]},
])
@pytest.mark.parametrize("name", ["openai", "ollama", "lollms"])
def test_invalid_options_fail_before_any_request(name: str, options: dict[str, Any]) -> None:
    server = Server({})
    binding, _ = make(name, server, model="m")
    with pytest.raises(InvalidOptionError):
        binding.generate("Hello", **options)
    assert server.requests == []


@pytest.mark.parametrize("image", [
    b"not an image", "/no/such/file.png", "data:image/png;base64,@@@", "data:text/plain,hi", 42,
])
@pytest.mark.parametrize("name", ["openai", "ollama", "lollms"])
def test_invalid_images_fail_before_any_request(name: str, image: Any) -> None:
    server = Server({})
    binding, _ = make(name, server, model="m")
    with pytest.raises(InvalidImageError):
        binding.generate("Hello", images=[image])
    assert server.requests == []


def test_bad_messages_fail_before_any_request() -> None:
    server = Server({})
    binding, _ = make("openai", server, model="m")
    with pytest.raises(InvalidOptionError):
        binding.generate([{"role": "user"}])
    with pytest.raises(InvalidOptionError):
        binding.generate([{"role": "system", "content": "x"}])
    assert server.requests == []


def test_options_are_normalised() -> None:
    server = openai_server()
    binding, _ = make("openai", server, model="m")
    response = binding.generate("x", n_predict=5.0, temperature=1, stop=("a", "b"), seed=None)
    assert response.options == {"n_predict": 5, "temperature": 1.0, "stop": ["a", "b"]}
    assert response.text
    body = server.bodies("/v1/chat/completions")[0]
    assert body["max_tokens"] == 5 and isinstance(body["max_tokens"], int)
    assert "seed" not in body


# -- OpenAI: SSE parsing ----------------------------------------------------------------


def chat_stream(pieces: list[str], **kw: Any) -> Server:
    return openai_server(lambda _: stream_response(pieces, **kw))


def read(server: Server, name: str = "openai", **kw: Any) -> Any:
    binding, _ = make(name, server, model="m", **kw)
    response = binding.generate("Hello")
    return response, list(response)


def test_sse_crlf_comments_and_other_fields() -> None:
    nl = "\r\n"
    pieces = [
        f": keep-alive{nl}{nl}",
        f"event: message{nl}id: 1{nl}retry: 10{nl}",
        *sse(delta("", role="assistant"), delta("Hé"), nl=nl, done=False),
        f": ping{nl}{nl}",
        *sse(delta("llo"), delta(None, "stop"), nl=nl),
    ]
    response, got = read(chat_stream(pieces))
    assert got == ["Hé", "llo"]
    assert response.finish_reason == "stop"


def test_sse_frames_split_anywhere() -> None:
    whole = "".join(sse(delta("día "), delta("🙂"), delta("\nfin", "stop"))).encode("utf-8")
    pieces = [whole[i:i + 3] for i in range(0, len(whole), 3)]  # cuts inside characters
    response, got = read(chat_stream(pieces))
    assert "".join(got) == "día 🙂\nfin"
    assert response.done


def test_sse_multi_line_data_event() -> None:
    event = json.dumps(delta("multi"), indent=1).split("\n")
    text = "".join(f"data: {line}\n" for line in event) + "\n"
    _, got = read(chat_stream([text, *sse(delta(None, "stop"))]))
    assert got == ["multi"]


def test_sse_empty_choices_empty_delta_and_usage_chunk() -> None:
    pieces = sse(
        {"choices": []},
        delta("A"),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": None}]},
        delta("B"),
        delta(None, "length"),
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
    )
    response, got = read(chat_stream(pieces))
    assert got == ["A", "B"]
    assert response.finish_reason == "length"
    assert (response.prompt_tokens, response.completion_tokens) == (3, 2)
    # Two tokens, the first timed apart: one token over the time after it.
    assert response.tokens_per_second is not None and response.tokens_per_second > 0
    assert response.duration is not None and response.time_to_first_token is not None
    elapsed = response.duration - response.time_to_first_token
    assert response.tokens_per_second == pytest.approx(1 / elapsed, rel=1e-6)


def test_sse_done_ends_the_stream_even_with_more_bytes() -> None:
    pieces = [*sse(delta("A", "stop")), "data: garbage that is never read\n\n"]
    _, got = read(chat_stream(pieces))
    assert got == ["A"]


def test_sse_without_done_but_with_finish_reason_is_complete() -> None:
    response, got = read(chat_stream(sse(delta("A"), delta(None, "stop"), done=False)))
    assert got == ["A"] and response.done


def test_sse_without_end_is_broken() -> None:
    binding, _ = make("openai", chat_stream(sse(delta("A"), delta("B"), done=False)), model="m")
    with pytest.raises(StreamBrokenError, match="before the answer was complete") as info:
        _ = binding.generate("x").text
    assert info.value.partial_text == "AB"


def test_sse_error_event_midstream() -> None:
    pieces = sse(delta("par"), delta("tial"),
                 {"error": {"message": "model crashed", "type": "server_error"}})
    binding, _ = make("openai", chat_stream(pieces), model="m")
    response = binding.generate("x")
    with pytest.raises(StreamBrokenError, match="model crashed") as info:
        _ = response.text
    assert info.value.partial_text == "partial"
    assert response.text == "partial"
    assert response.error is info.value


def test_llamacpp_error_line() -> None:
    pieces = [*sse(delta("so far"), done=False),
              'error: {"code":500,"message":"llama died","type":"server_error"}\n\n',
              "data: [DONE]\n\n"]
    binding, _ = make("openai", chat_stream(pieces), model="m")
    with pytest.raises(StreamBrokenError, match="llama died") as info:
        _ = binding.generate("x").text
    assert info.value.partial_text == "so far"


def test_sse_event_that_is_not_json_is_broken() -> None:
    binding, _ = make("openai", chat_stream(["data: {oops\n\n"]), model="m")
    with pytest.raises(StreamBrokenError, match="not JSON"):
        _ = binding.generate("x").text


@pytest.mark.parametrize("payload", ["[1, 2]", "42", '"text"', "null"])
def test_sse_event_that_is_not_an_object_is_broken(payload: str) -> None:
    binding, _ = make("openai", chat_stream([f"data: {payload}\n\n"]), model="m")
    with pytest.raises(StreamBrokenError):
        _ = binding.generate("x").text


def test_non_stream_that_is_not_a_completion_is_broken() -> None:
    server = openai_server(lambda _: httpx.Response(200, json={"nope": 1}))
    binding, _ = make("openai", server, model="m")
    with pytest.raises(StreamBrokenError, match="not a chat completion"):
        _ = binding.generate("x", stream=False).text


# -- error bodies and statuses ----------------------------------------------------------


def test_vllm_flat_error() -> None:
    body = {"object": "error", "message": "max_tokens is too large", "type": "BadRequestError",
            "param": None, "code": 400}
    server = openai_server(lambda _: httpx.Response(400, json=body))
    binding, sleeps = make("openai", server, model="m")
    with pytest.raises(BadRequestError, match="max_tokens is too large") as info:
        _ = binding.generate("x").text
    assert info.value.status_code == 400
    assert sleeps == [] and server.calls("/v1/chat/completions") == 1


def test_fastapi_detail_string_and_list() -> None:
    server = openai_server(lambda _: httpx.Response(400, json={"detail": "Invalid model name 'x'."}))
    binding, _ = make("openai", server, model="m")
    with pytest.raises(BadRequestError, match="Invalid model name 'x'"):
        _ = binding.generate("x").text
    detail = [{"loc": ["body", "messages", 0, "content"], "msg": "Field required",
               "type": "missing"}]
    server = openai_server(lambda _: httpx.Response(422, json={"detail": detail}))
    binding, _ = make("openai", server, model="m")
    with pytest.raises(BadRequestError, match=r"messages\.0\.content: Field required"):
        _ = binding.generate("x").text


def test_plain_text_error_body() -> None:
    server = openai_server(lambda _: httpx.Response(400, text="bad\nthing happened"))
    binding, _ = make("openai", server, model="m")
    with pytest.raises(BadRequestError, match="bad thing happened") as info:
        _ = binding.generate("x").text
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("key_in_body", [False, True])
def test_auth_errors_name_the_variable_and_never_the_key(status: int, key_in_body: bool) -> None:
    message = f"Incorrect API key provided: {SECRET}" if key_in_body else "Incorrect API key"
    server = openai_server(lambda _: error_json(status, message, "invalid_api_key"))
    binding, sleeps = make("openai", server, model="m", api_key=SECRET)
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY") as info:
        _ = binding.generate("x").text
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.args)
    assert sleeps == []


def test_lollms_auth_error_names_its_variable() -> None:
    server = Server({
        "GET /v1/models": lambda _: httpx.Response(401, json={"detail": "API Key is required."}),
        "POST /v1/chat/completions": lambda _: httpx.Response(
            401, json={"detail": "API Key is required."}),
    })
    binding, _ = make("lollms", server, model="a/b")
    with pytest.raises(AuthenticationError, match="LOLLMS_API_KEY"):
        _ = binding.generate("x").text


def test_404_unknown_model_lists_available_models() -> None:
    server = openai_server(lambda _: error_json(
        404, "The model `nope` does not exist", "model_not_found"))
    binding, sleeps = make("openai", server, model="nope")
    with pytest.raises(UnknownModelError) as info:
        _ = binding.generate("x").text
    assert info.value.available == ["gpt-a", "gpt-b"]
    assert "gpt-a, gpt-b" in str(info.value)
    assert isinstance(info.value, KeyError) and not str(info.value).startswith("'")
    assert sleeps == []


def test_404_unknown_route_is_not_an_unknown_model() -> None:
    server = openai_server(lambda _: httpx.Response(404, json={"detail": "Not Found"}))
    binding, _ = make("openai", server, model="m")
    with pytest.raises(BadRequestError):
        _ = binding.generate("x").text


def test_429_retry_after_seconds() -> None:
    server = openai_server(fails(error_json(429, "slow down", "rate_limit_exceeded",
                                            headers={"retry-after": "3"})))
    binding, sleeps = make("openai", server, model="m")
    assert binding.generate("x").text == "Hi there"
    assert sleeps == [3.0]
    assert server.calls("/v1/chat/completions") == 2


def test_429_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    server = openai_server(fails(error_json(429, "slow down", headers={"retry-after": when})))
    binding, sleeps = make("openai", server, model="m")
    assert binding.generate("x").text == "Hi there"
    assert len(sleeps) == 1 and 3.0 <= sleeps[0] <= 5.0


def test_429_retry_after_ms_wins() -> None:
    server = openai_server(fails(error_json(
        429, "slow down", headers={"retry-after-ms": "250", "retry-after": "9"})))
    binding, sleeps = make("openai", server, model="m")
    assert binding.generate("x").text == "Hi there"
    assert sleeps == [0.25]


def test_429_without_retry_after_backs_off() -> None:
    server = openai_server(fails(*[error_json(429, "slow down")] * 2))
    binding, sleeps = make("openai", server, model="m")
    assert binding.generate("x").text == "Hi there"
    assert len(sleeps) == 2 and 0.3 <= sleeps[0] <= 0.5 and 0.7 <= sleeps[1] <= 1.0


def test_429_retries_spent() -> None:
    server = openai_server(fails(*[error_json(429, "slow down", headers={"retry-after": "1"})] * 5))
    binding, sleeps = make("openai", server, model="m", max_retries=2)
    with pytest.raises(RateLimitError, match="rate limiting") as info:
        _ = binding.generate("x").text
    assert sleeps == [1.0, 1.0]
    assert server.calls("/v1/chat/completions") == 3
    assert info.value.retry_after == 1.0 and info.value.status_code == 429


def test_huge_retry_after_is_not_slept_through() -> None:
    server = openai_server(fails(error_json(429, "slow down", headers={"retry-after": "3600"})))
    binding, sleeps = make("openai", server, model="m")
    with pytest.raises(RateLimitError) as info:
        _ = binding.generate("x").text
    assert sleeps == []
    assert info.value.retry_after == 3600.0
    assert server.calls("/v1/chat/completions") == 1


def test_insufficient_quota_is_not_retried() -> None:
    server = openai_server(fails(error_json(
        429, "You exceeded your current quota", "insufficient_quota", "insufficient_quota",
        headers={"retry-after": "1"})))
    binding, sleeps = make("openai", server, model="m")
    with pytest.raises(RateLimitError, match="quota"):
        _ = binding.generate("x").text
    assert sleeps == []
    assert server.calls("/v1/chat/completions") == 1


def test_x_should_retry_false_is_honoured() -> None:
    server = openai_server(fails(error_json(503, "busy", headers={"x-should-retry": "false"})))
    binding, sleeps = make("openai", server, model="m")
    with pytest.raises(ServerError):
        _ = binding.generate("x").text
    assert sleeps == []


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 409])
def test_retryable_statuses_then_success(status: int) -> None:
    server = openai_server(fails(error_json(status, "oops")))
    binding, sleeps = make("openai", server, model="m")
    assert binding.generate("x").text == "Hi there"
    assert len(sleeps) == 1


def test_5xx_retried_then_server_error() -> None:
    server = openai_server(fails(*[error_json(500, "kaput", type_="server_error")] * 5))
    binding, sleeps = make("openai", server, model="m", max_retries=2)
    with pytest.raises(ServerError, match="kaput") as info:
        _ = binding.generate("x").text
    assert len(sleeps) == 2 and sleeps[0] < sleeps[1]
    assert server.calls("/v1/chat/completions") == 3
    assert info.value.status_code == 500


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


@pytest.mark.parametrize(("name", "hint"), [
    ("openai", "OPENAI_BASE_URL"), ("ollama", "ollama serve"), ("lollms", "start LoLLMs"),
])
def test_connection_refused_is_retried_then_unreachable(name: str, hint: str) -> None:
    server = Server({})
    server.routes = {}
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return refused(request)

    extra = {"protocol": "webui"} if name == "lollms" else {}
    binding = get_binding(name, host="http://down.test:1234", model="m",
                          transport=httpx.MockTransport(handler), **extra)
    sleeps: list[float] = []
    binding._sleep = sleeps.append  # type: ignore[method-assign]
    with pytest.raises(ServerUnreachableError) as info:
        _ = binding.generate("x").text
    assert len(calls) == 3 and len(sleeps) == 2
    assert "http://down.test:1234" in str(info.value)
    assert hint in str(info.value)


def test_connect_timeout_is_a_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    binding = get_binding("ollama", host="http://slow.test", model="m",
                          transport=httpx.MockTransport(handler))
    with pytest.raises(BindingTimeout):
        _ = binding.generate("x").text


# -- Ollama -------------------------------------------------------------------------


def ndjson(*events: dict[str, Any]) -> list[str]:
    return [json.dumps(e) + "\n" for e in events]


def ollama_chunk(text: str) -> dict[str, Any]:
    return {"model": "m", "message": {"role": "assistant", "content": text}, "done": False}


OLLAMA_DONE = {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True,
               "done_reason": "stop", "prompt_eval_count": 4, "eval_count": 2,
               "total_duration": 1000, "eval_duration": 500}


def ollama_tags(_: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"models": [
        {"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 1, "details": {"family": "llama"}},
        {"name": "qwen:7b", "model": "qwen:7b", "size": 2, "details": {}}]})


def ollama_server(pieces: list[str] | None = None, error: Exception | None = None) -> Server:
    pieces = pieces if pieces is not None else ndjson(ollama_chunk("Hel"), ollama_chunk("lo"),
                                                      OLLAMA_DONE)

    def chat(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content).get("stream") is False:
            return httpx.Response(200, json={**OLLAMA_DONE, "message": {
                "role": "assistant", "content": "Hello"}})
        return stream_response(pieces, "application/x-ndjson", error)

    def generate(request: httpx.Request) -> httpx.Response:
        return stream_response(ndjson({"response": "Gen", "done": False},
                                      {"response": "", "done": True, "done_reason": "stop",
                                       "eval_count": 1, "prompt_eval_count": 2}),
                               "application/x-ndjson")

    return Server({"POST /api/chat": chat, "POST /api/generate": generate,
                   "GET /api/tags": ollama_tags})


def test_ollama_payload_maps_every_option() -> None:
    server = ollama_server()
    binding, _ = make("ollama", server, model="llama3.2", keep_alive="10m")
    response = binding.generate(
        "Hi", system="Sys", n_predict=10, temperature=0.3, top_k=20, top_p=0.8,
        repeat_penalty=1.2, repeat_last_n=32, seed=1, ctx_size=8192, stop=["x"],
    )
    assert response.text == "Hello"
    assert response.ignored_options == []
    (body,) = server.bodies("/api/chat")
    assert body == {
        "model": "llama3.2", "stream": True, "keep_alive": "10m",
        "messages": [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi"}],
        "options": {"num_predict": 10, "temperature": 0.3, "top_k": 20, "top_p": 0.8,
                    "repeat_penalty": 1.2, "repeat_last_n": 32, "seed": 1, "num_ctx": 8192,
                    "stop": ["x"]},
    }
    assert (response.prompt_tokens, response.completion_tokens) == (4, 2)
    assert response.finish_reason == "stop"


@pytest.mark.parametrize("kind", ["path", "bytes", "pil", "data_url"])
def test_ollama_images_are_raw_base64(kind: str, tmp_path: Any) -> None:
    path = tmp_path / "img.png"
    path.write_bytes(PNG)
    image = {"path": path, "bytes": PNG, "pil": _pil_image(), "data_url": PNG_URL}[kind]
    server = ollama_server()
    binding, _ = make("ollama", server, model="llava")
    assert binding.generate("What?", images=[image]).text == "Hello"
    (body,) = server.bodies("/api/chat")
    (b64,) = body["messages"][-1]["images"]
    assert not b64.startswith("data:")
    assert base64.b64decode(b64).startswith(b"\x89PNG")
    if kind != "pil":
        assert b64 == PNG_B64


def test_ollama_generate_api_with_system_and_images() -> None:
    server = ollama_server()
    binding, _ = make("ollama", server, model="m", api="generate")
    response = binding.generate("Hi", system="Sys", images=[PNG], seed=3)
    assert response.text == "Gen"
    (body,) = server.bodies("/api/generate")
    assert body == {"model": "m", "stream": True, "prompt": "Hi", "system": "Sys",
                    "images": [PNG_B64], "options": {"seed": 3}}
    assert response.completion_tokens == 1


def test_ollama_non_stream() -> None:
    server = ollama_server()
    binding, _ = make("ollama", server, model="m")
    response = binding.generate("Hi", stream=False)
    assert list(response) == ["Hello"]
    assert response.completion_tokens == 2
    assert server.bodies("/api/chat")[0]["stream"] is False


def test_ollama_authorization_only_with_key() -> None:
    server = ollama_server()
    binding, _ = make("ollama", server, model="m")
    assert binding.generate("x").text
    assert "authorization" not in server.requests[-1].headers
    binding, _ = make("ollama", server, model="m", api_key="proxy-key")
    assert binding.generate("x").text
    assert server.requests[-1].headers["authorization"] == "Bearer proxy-key"


@pytest.mark.parametrize(("value", "host"), [
    ("0.0.0.0", "http://0.0.0.0:11434"),
    ("myhost:8000", "http://myhost:8000"),
    ("myhost", "http://myhost:11434"),
    ("https://ollama.example.org", "https://ollama.example.org"),
    ("http://myhost", "http://myhost:11434"),
    ("http://myhost:1234/", "http://myhost:1234"),
])
def test_ollama_host_forms(monkeypatch: pytest.MonkeyPatch, value: str, host: str) -> None:
    monkeypatch.setenv("OLLAMA_HOST", value)
    server = ollama_server()
    binding = get_binding("ollama", model="m", transport=server.transport)
    assert binding.host == host
    assert binding.generate("x").text == "Hello"
    assert str(server.requests[-1].url) == host + "/api/chat"


def test_ollama_default_host() -> None:
    assert get_binding("ollama").host == "http://127.0.0.1:11434"


def test_ollama_midstream_error_line() -> None:
    pieces = ndjson(ollama_chunk("Hal"), ollama_chunk("f"),
                    {"error": "an error was encountered while running the model"})
    binding, _ = make("ollama", ollama_server(pieces), model="m")
    response = binding.generate("x")
    with pytest.raises(StreamBrokenError, match="encountered while running") as info:
        _ = response.text
    assert info.value.partial_text == "Half" == response.text


def test_ollama_split_lines_and_multibyte() -> None:
    whole = "".join(ndjson(ollama_chunk("ça "), ollama_chunk("🙂"), OLLAMA_DONE)).encode()
    pieces = [whole[i:i + 5] for i in range(0, len(whole), 5)]
    binding, _ = make("ollama", ollama_server(pieces), model="m")
    assert binding.generate("x").text == "ça 🙂"


def test_ollama_without_done_is_broken() -> None:
    binding, _ = make("ollama", ollama_server(ndjson(ollama_chunk("A"))), model="m")
    with pytest.raises(StreamBrokenError, match="before the answer was complete") as info:
        _ = binding.generate("x").text
    assert info.value.partial_text == "A"


@pytest.mark.parametrize("line", ["{half a line\n", "[1, 2]\n"])
def test_ollama_bad_line_is_broken(line: str) -> None:
    binding, _ = make("ollama", ollama_server([*ndjson(ollama_chunk("A")), line]), model="m")
    with pytest.raises(StreamBrokenError) as info:
        _ = binding.generate("x").text
    assert info.value.partial_text == "A"


def test_ollama_404_lists_tags() -> None:
    server = ollama_server()
    server.routes["POST /api/chat"] = lambda _: httpx.Response(
        404, json={"error": "model 'nope' not found"})
    binding, _ = make("ollama", server, model="nope")
    with pytest.raises(UnknownModelError, match=r"llama3\.2:latest, qwen:7b") as info:
        _ = binding.generate("x").text
    assert info.value.available == ["llama3.2:latest", "qwen:7b"]


def test_ollama_list_models_with_details() -> None:
    binding, _ = make("ollama", ollama_server())
    models = binding.list_models()
    assert [m.name for m in models] == ["llama3.2:latest", "qwen:7b"]
    assert models[0].details["details"] == {"family": "llama"}
    assert str(models[0]) == "llama3.2:latest"


def test_ollama_tags_that_are_not_a_list() -> None:
    server = Server({"GET /api/tags": lambda _: httpx.Response(200, json={"x": 1})})
    binding, _ = make("ollama", server)
    with pytest.raises(ProtocolError):
        binding.list_models()


def test_list_models_that_is_not_json() -> None:
    server = Server({"GET /v1/models": lambda _: httpx.Response(200, text="<html>")})
    binding, _ = make("openai", server)
    with pytest.raises(ProtocolError, match="not JSON"):
        binding.list_models()


# -- LoLLMs ---------------------------------------------------------------------------


def webui_server(pieces: list[str] | None = None, error: Exception | None = None,
                 reply: httpx.Response | None = None) -> Server:
    pieces = pieces if pieces is not None else ["Hel", "lo\n", "wor", "ld"]

    def generate(request: httpx.Request) -> httpx.Response:
        if reply is not None:
            return reply
        if json.loads(request.content).get("stream"):
            return stream_response(pieces, "text/event-stream", error)
        return httpx.Response(200, text="".join(pieces))

    return Server({
        "POST /lollms_generate": generate,
        "POST /lollms_generate_with_images": generate,
        "GET /list_models": lambda _: httpx.Response(200, json=["m1", "m2"]),
    })


def test_legacy_payload_and_transcript() -> None:
    server = webui_server()
    binding, _ = make("lollms", server, model="mistral", personality=2)
    response = binding.generate("Say hi", system="You are terse.", n_predict=64, temperature=0.7,
                                top_k=40, top_p=0.9, repeat_penalty=1.1, repeat_last_n=64)
    assert response.text == "Hello\nworld"
    (body,) = server.bodies("/lollms_generate")
    assert body == {
        "prompt": "!@>system: You are terse.\n!@>user: Say hi\n!@>assistant:",
        "model_name": "mistral", "personality": 2, "stream": True,
        "n_predict": 64, "temperature": 0.7, "top_k": 40, "top_p": 0.9,
        "repeat_penalty": 1.1, "repeat_last_n": 64,
    }


# lollms-webui's lollms_generate (lollms/server/endpoints/lollms_generator.py)
# never passes seed to the model, passes each sampling value as
# ``request.x or config.x`` (so 0 means the server's own setting), and its
# whole-answer path passes only temperature and n_predict.
@pytest.mark.parametrize(("stream", "options", "ignored"), [
    (True, {"seed": 5, "temperature": 0.5}, ["seed"]),
    (True, {"temperature": 0, "top_k": 0, "top_p": 0.9}, ["temperature", "top_k"]),
    (False, {"top_k": 40, "temperature": 0.2, "n_predict": 8}, ["top_k"]),
])
def test_legacy_options_the_server_ignores_are_reported_and_not_sent(
    stream: bool, options: dict[str, Any], ignored: list[str]
) -> None:
    server = webui_server()
    binding, _ = make("lollms", server, model="m")
    with pytest.warns(UnsupportedOptionWarning, match=", ".join(ignored)):
        response = binding.generate("x", stream=stream, **options)
    assert response.ignored_options == ignored
    assert response.text == "Hello\nworld"
    (body,) = server.bodies("/lollms_generate")
    assert not set(ignored) & set(body)


def test_legacy_single_prompt_is_sent_as_is_and_chat_becomes_a_transcript() -> None:
    server = webui_server()
    binding, _ = make("lollms", server, model="m")
    assert binding.generate("Just this").text
    assert server.bodies("/lollms_generate")[-1]["prompt"] == "Just this"
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"}]
    assert binding.generate(messages).text
    assert server.bodies("/lollms_generate")[-1]["prompt"] == (
        "!@>user: a\n!@>assistant: b\n!@>user: c\n!@>assistant:")


def test_legacy_unsupported_options_are_reported() -> None:
    server = webui_server()
    binding, _ = make("lollms", server, model="m")
    with pytest.warns(UnsupportedOptionWarning, match="ctx_size, stop"):
        response = binding.generate("x", ctx_size=2048, stop="###")
    assert response.ignored_options == ["ctx_size", "stop"]
    assert response.text
    body = server.bodies("/lollms_generate")[0]
    assert "ctx_size" not in body and "stop" not in body


@pytest.mark.parametrize("kind", ["path", "bytes", "pil", "data_url"])
def test_legacy_images_are_raw_base64(kind: str, tmp_path: Any) -> None:
    path = tmp_path / "img.png"
    path.write_bytes(PNG)
    image = {"path": str(path), "bytes": PNG, "pil": _pil_image(), "data_url": PNG_URL}[kind]
    server = webui_server()
    binding, _ = make("lollms", server, model="m")
    assert binding.generate("What?", images=[image]).text == "Hello\nworld"
    (body,) = server.bodies("/lollms_generate_with_images")
    (b64,) = body["images"]
    assert not b64.startswith("data:")
    assert base64.b64decode(b64).startswith(b"\x89PNG")
    if kind != "pil":
        assert b64 == PNG_B64


def test_legacy_raw_stream_keeps_newlines_and_multibyte() -> None:
    text = "ligne 1\n\nça 🙂 va\n"
    raw = text.encode("utf-8")
    pieces = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    binding, _ = make("lollms", webui_server(pieces), model="m")  # type: ignore[arg-type]
    assert binding.generate("x").text == text


@pytest.mark.parametrize(("pieces", "text"), [
    (["Hi", " there", "!"], "Hi there!"),
    (["Hi", " there!"], "Hi there!"),
    (["Wow!", " Great"], "Wow! Great"),
    (["a!", "!", "b"], "a!!b"),
])
def test_legacy_a_final_bang_is_real_text(pieces: list[str], text: str) -> None:
    # The server itself holds back a lone "!" (in case "@>" follows) and drops
    # it when generation ends there (RECEPTION_MANAGER.new_chunk in lollms-webui's
    # lollms/generation.py): any "!" that reaches the client is the answer's.
    binding, _ = make("lollms", webui_server(pieces), model="m")
    assert binding.generate("x").text == text


def test_legacy_non_stream_keeps_a_final_bang() -> None:
    binding, _ = make("lollms", webui_server(["Hi!"]), model="m")
    assert binding.generate("x", stream=False).text == "Hi!"


def test_legacy_status_false_in_a_200() -> None:
    reply = httpx.Response(200, json={"status": False, "error": "Model not loaded properly"})
    server = webui_server(reply=reply)
    binding, sleeps = make("lollms", server, model="m")
    with pytest.raises(ServerError, match="Model not loaded properly"):
        _ = binding.generate("x").text
    assert sleeps == []


def test_legacy_null_in_a_200() -> None:
    server = webui_server(reply=httpx.Response(
        200, content=b"null", headers={"content-type": "application/json"}))
    binding, _ = make("lollms", server, model="m")
    with pytest.raises(ServerError, match="no model loaded"):
        _ = binding.generate("x").text


def test_legacy_other_json_in_a_200() -> None:
    server = webui_server(reply=httpx.Response(200, json={"weird": 1}))
    binding, _ = make("lollms", server, model="m")
    with pytest.raises(ProtocolError):
        _ = binding.generate("x").text


def test_legacy_images_400_detail() -> None:
    server = webui_server(reply=httpx.Response(400, json={"detail": "Error : bad image"}))
    binding, _ = make("lollms", server, model="m")
    with pytest.raises(BadRequestError, match="Error : bad image"):
        _ = binding.generate("x", images=[PNG]).text


def test_legacy_aborted_stream_keeps_partial_text() -> None:
    server = webui_server(["par", "tial!"], error=httpx.RemoteProtocolError("peer closed"))
    binding, _ = make("lollms", server, model="m")
    with pytest.raises(StreamBrokenError, match="closed the connection") as info:
        _ = binding.generate("x").text
    assert info.value.partial_text == "partial!"  # a held ! was received text


def test_legacy_list_models() -> None:
    binding, _ = make("lollms", webui_server())
    assert [m.name for m in binding.list_models()] == ["m1", "m2"]


def v1_server(key_required: bool = False) -> Server:
    def models(request: httpx.Request) -> httpx.Response:
        if key_required and "authorization" not in request.headers:
            return httpx.Response(401, json={"detail": "API Key is required."})
        return httpx.Response(200, json={"object": "list", "data": [{"id": "ollama/llama3"}]})

    return Server({"GET /v1/models": models, "POST /v1/chat/completions": openai_ok})


def test_lollms_detects_the_new_server() -> None:
    server = v1_server()
    binding, _ = make("lollms", server, api_key="lollms_k")
    with pytest.warns(UnsupportedOptionWarning, match="top_k"):
        response = binding.generate("x", top_k=3, n_predict=5, temperature=0.1)
    assert response.text == "Hi there"
    assert binding.protocol == "v1"
    body = server.bodies("/v1/chat/completions")[0]
    assert body["model"] == "ollama/llama3"
    assert body["max_tokens"] == 5 and "top_k" not in body
    assert "stream_options" not in body
    assert server.requests[-1].headers["authorization"] == "Bearer lollms_k"
    assert [m.name for m in binding.list_models()] == ["ollama/llama3"]


def test_lollms_detects_a_new_server_that_wants_a_key() -> None:
    server = v1_server(key_required=True)
    binding, _ = make("lollms", server)
    assert binding.detect() == "v1"


def test_lollms_detects_the_legacy_server_and_caches_it() -> None:
    server = webui_server()
    binding, _ = make("lollms", server, model="m")
    assert binding.detect() == "webui"
    probes = [str(r.url.path) for r in server.requests]
    assert probes == ["/v1/models", "/list_models"]
    other, _ = make("lollms", server, model="m")  # a new binding on the same host
    assert other.generate("x").text == "Hello\nworld"
    assert server.calls("/v1/models") == 1 and server.calls("/list_models") == 1
    third, _ = make("lollms", server, host="http://other.test", protocol="auto")
    assert third.detect() == "webui"
    assert server.calls("/list_models") == 2  # another host is probed again


def test_lollms_protocol_can_be_pinned() -> None:
    server = webui_server()
    binding, _ = make("lollms", server, model="m", protocol="webui")
    assert binding.generate("x").text == "Hello\nworld"
    assert server.calls("/v1/models") == 0 and server.calls("/list_models") == 0
    server = v1_server()
    binding, _ = make("lollms", server, model="a/b", protocol="v1")
    assert binding.generate("x").text == "Hi there"
    assert server.calls("/v1/models") == 0
    with pytest.raises(ValueError):
        get_binding("lollms", protocol="v2")


def test_lollms_unknown_server_is_a_protocol_error() -> None:
    server = Server({})
    binding, _ = make("lollms", server)
    with pytest.raises(ProtocolError, match="pin protocol"):
        binding.detect()


def test_lollms_unreachable_on_both_default_ports() -> None:
    binding = get_binding("lollms", transport=httpx.MockTransport(refused))
    with pytest.raises(ServerUnreachableError, match=r"9600 or .*9642"):
        binding.detect()


# -- Response behaviour --------------------------------------------------------------


def test_iterate_then_text_then_replay() -> None:
    binding, _ = make("openai", chat_stream(sse(delta("a"), delta("b"), delta("c", "stop"))),
                      model="m")
    response = binding.generate("x")
    assert repr(response).startswith("<Response openai:m new")
    assert list(response) == ["a", "b", "c"]
    assert response.text == "abc" == str(response)
    assert list(response) == ["a", "b", "c"]  # replayed, not sent again
    assert response.done and not response.interrupted


def test_text_reads_the_whole_stream() -> None:
    server = chat_stream(sse(delta("a"), delta("b", "stop")))
    binding, _ = make("openai", server, model="m")
    response = binding.generate("x")
    assert server.requests == []  # nothing sent until it is read
    assert response.text == "ab"
    assert server.calls("/v1/chat/completions") == 1


def test_early_break_closes_the_stream_and_keeps_partial_text() -> None:
    body = Body(sse(*(delta(f"{i} ") for i in range(100)), delta(None, "stop")))
    server = openai_server(lambda _: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=body))
    binding, _ = make("openai", server, model="m")
    response = binding.generate("x")
    got = []
    for piece in response:
        got.append(piece)
        if len(got) == 3:
            break
    assert body.closed
    assert body.sent < 10
    assert response.text == "0 1 2 "
    assert response.interrupted and not response.done
    assert list(response) == got
    assert response.metadata()["interrupted"] is True


def test_close_before_reading_sends_nothing() -> None:
    server = chat_stream(sse(delta("a", "stop")))
    binding, _ = make("openai", server, model="m")
    response = binding.generate("x")
    response.close()
    assert response.text == ""
    assert server.requests == []


def test_keyboard_interrupt_inside_the_stream() -> None:
    body = Body(sse(delta("a"), delta("b")), error=None)

    def chat(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    binding, _ = make("openai", openai_server(chat), model="m")
    response = binding.generate("x")
    with pytest.raises(KeyboardInterrupt):
        for piece in response:
            if piece == "b":
                raise KeyboardInterrupt
    assert body.closed
    assert response.text == "ab" and response.interrupted


def test_stream_broken_by_the_network_carries_partial_text() -> None:
    server = chat_stream(sse(delta("one "), delta("two"), done=False),
                         error=httpx.RemoteProtocolError("peer closed connection"))
    binding, _ = make("openai", server, model="m")
    response = binding.generate("x")
    with pytest.raises(StreamBrokenError, match="closed the connection") as info:
        for _ in response:
            pass
    assert info.value.partial_text == "one two" == response.text
    assert "one two" not in str(info.value)  # the message stays one short line
    assert response.metadata()["error"] == str(info.value)


def test_read_timeout_after_text_is_a_broken_stream() -> None:
    server = chat_stream(sse(delta("one"), done=False), error=httpx.ReadTimeout("timed out"))
    binding, _ = make("openai", server, model="m", read_timeout=0.5)
    with pytest.raises(StreamBrokenError, match=r"silent for 0\.5 s") as info:
        _ = binding.generate("x").text
    assert info.value.partial_text == "one"


def test_read_timeout_before_any_text_is_a_timeout() -> None:
    server = chat_stream(sse(delta("", role="assistant"), done=False),
                         error=httpx.ReadTimeout("timed out"))
    binding, _ = make("openai", server, model="m", read_timeout=0.5)
    with pytest.raises(BindingTimeout, match=r"no text within 0\.5 s"):
        _ = binding.generate("x").text


def test_timing_fields_and_metadata_hold_no_key() -> None:
    pieces = sse(delta("a"), delta("b"), delta("c", "stop"),
                 {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 3}})
    binding, _ = make("openai", chat_stream(pieces), model="m", api_key=SECRET)
    response = binding.generate("x", temperature=0.2)
    assert response.time_to_first_token is None and response.duration is None
    assert response.text == "abc"
    assert response.time_to_first_token is not None and response.time_to_first_token >= 0
    assert response.duration is not None and response.duration >= response.time_to_first_token
    meta = response.metadata()
    assert meta["binding"] == "openai" and meta["model"] == "m"
    assert meta["options"] == {"temperature": 0.2}
    assert meta["completion_tokens"] == 3 and meta["finish_reason"] == "stop"
    assert SECRET not in json.dumps(meta)
    assert SECRET not in repr(response)


def test_iterating_twice_at_once_is_refused() -> None:
    binding, _ = make("openai", chat_stream(sse(delta("a"), delta("b", "stop"))), model="m")
    response = binding.generate("x")
    it = iter(response)
    assert next(it) == "a"
    with pytest.raises(RuntimeError):
        iter(response)
    assert response.text == "a"  # what came so far, while running
    assert list(it) == ["b"]
    assert response.text == "ab"


# -- regressions of bugs found by these tests ------------------------------------------


def test_404_from_the_model_listing_does_not_recurse() -> None:
    # A 404 whose message mentions "model" on /models itself used to list again, forever.
    gone = httpx.Response(404, json={"detail": "models endpoint not found"})
    server = Server({
        "GET /v1/models": lambda _: gone,
        "POST /v1/chat/completions": lambda _: error_json(404, "model x not found"),
    })
    binding, _ = make("openai", server, model="x")
    with pytest.raises(UnknownModelError) as info:
        _ = binding.generate("x").text
    assert info.value.available == []
    assert server.calls("/v1/models") == 1


def test_retry_after_zero_uses_backoff() -> None:
    server = openai_server(fails(error_json(429, "slow down", headers={"retry-after": "0"})))
    binding, sleeps = make("openai", server, model="m")
    assert binding.generate("x").text == "Hi there"
    assert len(sleeps) == 1 and sleeps[0] > 0


def test_numpy_numbers_are_accepted_as_options() -> None:
    import numpy as np  # installed with llama-cpp-python, which the test extra holds
    server = openai_server()
    binding, _ = make("openai", server, model="m")
    response = binding.generate("x", n_predict=np.int64(8), temperature=np.float32(0.5),
                                seed=np.float64(3.0))
    assert response.text
    body = server.bodies("/v1/chat/completions")[0]
    assert body["max_tokens"] == 8 and type(body["max_tokens"]) is int
    assert body["temperature"] == 0.5 and body["seed"] == 3


@pytest.mark.parametrize("mode", ["CMYK", "RGBA", "L", "P"])
def test_pil_images_of_any_mode(mode: str) -> None:
    from PIL import Image

    server = ollama_server()
    binding, _ = make("ollama", server, model="m")
    image = Image.new(mode, (4, 4))
    assert binding.generate("x", images=[image]).text == "Hello"
    (b64,) = server.bodies("/api/chat")[0]["messages"][-1]["images"]
    assert base64.b64decode(b64).startswith(b"\x89PNG")


def test_a_server_without_models_says_so_before_generating() -> None:
    server = Server({"GET /api/tags": lambda _: httpx.Response(200, json={"models": []})})
    binding, _ = make("ollama", server)
    with pytest.raises(UnknownModelError, match="has no models"):
        _ = binding.generate("Hi").text
    assert server.calls("/api/chat") == 0


def test_the_first_model_is_used_when_none_is_given() -> None:
    server = ollama_server()
    binding, _ = make("ollama", server)
    assert binding.generate("Hi").text == "Hello"
    (body,) = server.bodies("/api/chat")
    assert body["model"] == binding.model and binding.model
    assert binding.generate("Again").text == "Hello"
    assert server.calls("/api/tags") == 1  # asked once, then remembered


@pytest.mark.parametrize(
    ("host", "trusted"),
    [("http://localhost:11434", False), ("http://127.0.0.1:9600", False), ("https://api.example.org", True)],
)
def test_proxy_variables_apply_to_remote_servers_only(
    monkeypatch: pytest.MonkeyPatch, host: str, trusted: bool
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    binding = get_binding("ollama", host=host)
    assert binding.client.trust_env is trusted
    binding.close()
