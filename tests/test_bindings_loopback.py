"""The bindings against the loopback servers, over real HTTP on 127.0.0.1.

Each test runs for four server flavours: an OpenAI-compatible server, the
new LoLLMs server (OpenAI-style /v1 with a key), the legacy lollms-webui
server (raw text stream) and Ollama (NDJSON). The servers split frames
across writes and cut multibyte characters, so exact text equality proves
that the bindings decode incrementally and lose nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from lollms_magics import get_binding
from lollms_magics.bindings.http import HTTPBinding as Binding
from lollms_magics.errors import (
    AuthenticationError,
    BindingTimeout,
    StreamBrokenError,
    UnknownModelError,
)
from tests.servers import LOLLMS_KEY, LoopbackServer
from tests.servers.base import plan_reply

pytestmark = pytest.mark.timeout(30)

PROMPT = "héllo wörld 🙂\nsecond line: naïve café ✓"
READ_TIMEOUT = 0.5


@dataclass
class Flavour:
    """One server flavour and how to make a binding that talks to it."""

    name: str
    server: Any  # LoopbackServer subclass instance
    binding: str
    model: str
    binding_kw: dict[str, Any]
    # The legacy server has no terminator and no in-band error: a stream
    # that stops early and cleanly looks like a finished one.
    has_end_marker: bool = True
    has_auth: bool = True
    knows_models: bool = True

    def make(self, **kw: Any) -> Binding:
        config: dict[str, Any] = {
            "host": self.server.url,
            "model": self.model,
            "connect_timeout": 2.0,
            "read_timeout": READ_TIMEOUT,
            **self.binding_kw,
        }
        config.update(kw)
        binding = get_binding(self.binding, **config)
        if self.binding == "lollms":
            binding.detect()  # so that planned failures hit the generation, not the probe
        return binding

    def model_name(self, fault: str) -> str:
        # The new LoLLMs server wants alias/model ids; magic names work either way.
        return f"ollama/{fault}" if self.name == "lollms_v1" else fault


FLAVOURS = ["openai", "lollms_v1", "lollms_webui", "ollama"]


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> Iterator[Flavour]:
    name = request.param
    if name == "openai":
        srv = request.getfixturevalue("openai_server")
        yield Flavour(name, srv, "openai", "test-model", {})
    elif name == "lollms_v1":
        srv = request.getfixturevalue("lollms_server")
        yield Flavour(
            name, srv, "lollms", "ollama/test-model", {"api_key": LOLLMS_KEY, "protocol": "auto"}
        )
    elif name == "lollms_webui":
        srv = request.getfixturevalue("lollms_webui_server")
        yield Flavour(
            name, srv, "lollms", "test-model", {}, has_end_marker=False, has_auth=False,
            knows_models=False,
        )
    else:
        srv = request.getfixturevalue("ollama_server")
        yield Flavour(name, srv, "ollama", "test-model", {}, has_auth=False)


def expected(fl: Flavour, model: str = "test-model", prompt: str = PROMPT) -> str:
    """The text the server means to send for ``prompt``."""
    return plan_reply(model, prompt, None).text


def partial(model: str) -> str:
    plan = plan_reply(model, PROMPT, None)
    return "".join(plan.pieces[: plan.fault_at])


def generation_requests(srv: LoopbackServer) -> list[Any]:
    gen_paths = {"/v1/chat/completions", "/api/chat", "/api/generate", "/lollms_generate"}
    return [r for r in srv.requests if r.path in gen_paths]


# -- happy paths -------------------------------------------------------------


def test_stream_exact_text(flavour: Flavour) -> None:
    binding = flavour.make()
    response = binding.generate(PROMPT)
    pieces = list(response)
    assert len(pieces) > 5  # really streamed
    assert "".join(pieces) == expected(flavour)
    assert response.text == expected(flavour)
    assert "\n" in response.text  # newlines survive, also in the legacy raw stream
    assert response.done
    assert response.time_to_first_token is not None
    if flavour.has_end_marker:
        assert response.finish_reason == "stop"


def test_stream_crlf_and_keepalive_comments(openai_server: Any) -> None:
    openai_server.crlf = True
    openai_server.keepalive_comments = True
    binding = get_binding("openai", host=openai_server.url, model="test-model", read_timeout=2)
    response = binding.generate(PROMPT)
    assert response.text == expected(Flavour("openai", openai_server, "openai", "", {}))
    assert response.finish_reason == "stop"
    assert response.completion_tokens == len(plan_reply("test-model", PROMPT, None).pieces)


def test_non_stream(flavour: Flavour) -> None:
    response = flavour.make().generate(PROMPT, stream=False)
    assert response.text == expected(flavour)
    assert response.done


def test_system_prompt_and_options_reach_the_server(flavour: Flavour) -> None:
    binding = flavour.make()
    response = binding.generate(PROMPT, system="Be brief.", n_predict=4, temperature=0.2)
    text = response.text
    # n_predict=4 caps the answer at 4 pieces on every server
    assert text == "".join(plan_reply("test-model", PROMPT, 4).pieces)
    body = generation_requests(flavour.server)[-1].json
    if flavour.name == "ollama":
        assert body["options"] == {"num_predict": 4, "temperature": 0.2}
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert response.finish_reason == "length"
    elif flavour.name == "lollms_webui":
        assert body["n_predict"] == 4
        assert body["prompt"].startswith("!@>system: Be brief.\n!@>user: ")
    else:
        assert body["max_tokens"] == 4
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert response.finish_reason == "length"


def test_list_models(flavour: Flavour) -> None:
    names = [m.name for m in flavour.make().list_models()]
    if flavour.name == "ollama":
        assert names == ["test-model:latest", "vision-model:latest"]
        assert flavour.make().list_models()[0].details["details"]["family"] == "llama"
    elif flavour.name == "lollms_v1":
        assert names == ["ollama/test-model", "ollama/vision-model"]
    else:
        assert names == ["test-model", "vision-model"]


def test_image_goes_with_the_request(flavour: Flavour) -> None:
    from tests.servers import tiny_png

    response = flavour.make().generate("What is this?", images=[tiny_png()])
    assert response.text == expected(flavour, prompt="What is this?")
    req = flavour.server.requests[-1]
    b64 = __import__("base64").b64encode(tiny_png()).decode()
    if flavour.name == "ollama":
        assert req.json["messages"][-1]["images"] == [b64]
    elif flavour.name == "lollms_webui":
        assert req.path == "/lollms_generate_with_images"
        assert req.json["images"] == [b64]
    else:
        part = req.json["messages"][-1]["content"][1]
        assert part["image_url"]["url"] == "data:image/png;base64," + b64


# -- faults in the stream ----------------------------------------------------


def test_midstream_error_keeps_partial_text(flavour: Flavour) -> None:
    response = flavour.make().generate(PROMPT, model=flavour.model_name("fail-midstream"))
    if not flavour.has_end_marker:
        # lollms-webui has no in-band error: the stream just stops early.
        assert response.text == partial("fail-midstream")
        return
    with pytest.raises(StreamBrokenError) as info:
        for _ in response:
            pass
    assert info.value.partial_text == partial("fail-midstream")
    assert response.text == partial("fail-midstream")
    host = flavour.make().host
    said = {"ollama": "an error was encountered while running the model"}.get(flavour.name, "boom")
    name = "lollms" if flavour.name == "lollms_v1" else flavour.name
    assert str(info.value) == f"{name} at {host}: the server reported an error: {said}"


def test_llamacpp_error_line(openai_server: Any) -> None:
    binding = get_binding("openai", host=openai_server.url, model="fail-midstream-llamacpp")
    with pytest.raises(StreamBrokenError, match="boom") as info:
        _ = binding.generate(PROMPT).text
    assert info.value.partial_text == partial("fail-midstream-llamacpp")


@pytest.mark.parametrize("fault", ["truncate", "truncate-midline"])
def test_aborted_stream(flavour: Flavour, fault: str) -> None:
    response = flavour.make().generate(PROMPT, model=flavour.model_name(fault))
    with pytest.raises(StreamBrokenError) as info:
        _ = response.text
    text = partial(fault)
    if fault == "truncate-midline" and flavour.name == "lollms_webui":
        text += "cut "  # raw text: the half piece is text too
    assert info.value.partial_text == text
    assert response.text == text
    assert not response.done


def test_clean_but_incomplete_stream(flavour: Flavour) -> None:
    response = flavour.make().generate(PROMPT, model=flavour.model_name("truncate-clean"))
    if not flavour.has_end_marker:
        assert response.text == partial("truncate-clean")  # indistinguishable from an end
        return
    with pytest.raises(StreamBrokenError, match="before the answer was complete") as info:
        _ = response.text
    assert info.value.partial_text == partial("truncate-clean")


def test_stall_is_reported_quickly(flavour: Flavour) -> None:
    response = flavour.make().generate(PROMPT, model=flavour.model_name("stall"))
    start = time.monotonic()
    with pytest.raises(StreamBrokenError, match="silent") as info:
        _ = response.text
    assert time.monotonic() - start < READ_TIMEOUT + 1.5
    assert info.value.partial_text == partial("stall")


def test_stall_before_any_text_is_a_timeout(flavour: Flavour) -> None:
    response = flavour.make().generate(PROMPT, model=flavour.model_name("stall-before"))
    start = time.monotonic()
    with pytest.raises(BindingTimeout):
        _ = response.text
    assert time.monotonic() - start < READ_TIMEOUT + 1.5
    assert response.text == ""


def test_non_stream_stall_is_a_timeout(flavour: Flavour) -> None:
    response = flavour.make().generate(PROMPT, stream=False, model=flavour.model_name("stall"))
    with pytest.raises(BindingTimeout):
        _ = response.text


# -- statuses ------------------------------------------------------------------


def test_429_retry_after_then_success(flavour: Flavour) -> None:
    binding = flavour.make()
    flavour.server.fail_next.append((429, {"Retry-After": "1"}))
    start = time.monotonic()
    response = binding.generate(PROMPT)
    assert response.text == expected(flavour)
    elapsed = time.monotonic() - start
    if flavour.name == "lollms_v1":
        assert elapsed >= 0.3  # this server sends no Retry-After: own backoff
    else:
        assert elapsed >= 1.0
    assert len(generation_requests(flavour.server)) == 2


def test_429_retries_spent(openai_server: Any) -> None:
    from lollms_magics.errors import RateLimitError

    binding = get_binding("openai", host=openai_server.url, model="test-model", max_retries=1)
    sleeps: list[float] = []
    binding._sleep = sleeps.append
    openai_server.fail_next.extend([(429, {"retry-after-ms": "200"})] * 2)
    with pytest.raises(RateLimitError):
        _ = binding.generate(PROMPT).text
    assert sleeps == [0.2]


def test_401(flavour: Flavour) -> None:
    secret = "lollms_wrong-secret-key-12345" if flavour.name == "lollms_v1" else "sk-wrong-123456789"
    if flavour.name == "openai":
        flavour.server.api_key = "sk-right-key-000000"
    binding = flavour.make(api_key=secret)
    if not flavour.has_auth:  # no auth in these protocols; a proxy in front could refuse
        flavour.server.fail_next.append((401, {}))
    with pytest.raises(AuthenticationError) as info:
        _ = binding.generate(PROMPT).text
    assert secret not in str(info.value)
    assert secret not in repr(info.value)


def test_401_without_key_names_the_variable(lollms_server: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("LOLLMS_API_KEY", raising=False)
    binding = get_binding("lollms", host=lollms_server.url, model="ollama/test-model")
    with pytest.raises(AuthenticationError, match="LOLLMS_API_KEY"):
        _ = binding.generate(PROMPT).text


# lollms-webui loads any model name it is given: it has no unknown model.
@pytest.mark.parametrize("flavour", [f for f in FLAVOURS if f != "lollms_webui"], indirect=True)
def test_unknown_model_lists_the_servers_models(flavour: Flavour) -> None:
    model = "ollama/no-such-model" if flavour.name == "lollms_v1" else "no-such-model"
    with pytest.raises(UnknownModelError) as info:
        _ = flavour.make().generate(PROMPT, model=model).text
    models = list(flavour.server.models)  # what the server holds, as it names them
    assert info.value.available == models
    for name in models:
        assert name in str(info.value)


# -- leaving early ---------------------------------------------------------------


def test_break_closes_the_stream(flavour: Flavour) -> None:
    response = flavour.make(read_timeout=5).generate(PROMPT, model=flavour.model_name("slow"))
    received = []
    for piece in response:
        received.append(piece)
        if len(received) == 3:
            break
    start = time.monotonic()
    assert flavour.server.wait_for_disconnect(4.0)
    assert time.monotonic() - start < 2.0
    text = "".join(received)
    assert response.text == text
    assert text.startswith(" tok tok") and text == " tok" * (len(text) // 4)
    assert len(text) < len(" tok" * 50)
    assert response.interrupted and not response.done
    assert list(response) == received  # replay


def test_two_generations_in_a_row(flavour: Flavour) -> None:
    binding = flavour.make()
    assert binding.generate(PROMPT).text == expected(flavour)
    assert binding.generate(PROMPT, stream=False).text == expected(flavour)
