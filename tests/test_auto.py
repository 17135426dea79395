"""The automatic choice of backend: priority order, concurrent probing, the error."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lollms_magics.bindings import lollms, ollama
from lollms_magics.bindings.base import Probe
from lollms_magics.bindings.llamacpp import LlamaCppBinding
from lollms_magics.core import auto
from lollms_magics.errors import NoBackendError
from tests.servers import LOLLMS_KEY

ENV = ("OLLAMA_HOST", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "LOLLMS_API_KEY",
       "MODEL_PROXY_HOST", "MODEL_PROXY_BASE_URL")


def _closed_url() -> str:
    """The URL of a loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def nothing_runs(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Every candidate points at a closed port and no variable is set."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(lollms, "WEBUI_HOST", _closed_url())
    monkeypatch.setattr(lollms, "SERVER_HOST", _closed_url())
    monkeypatch.setattr(ollama, "DEFAULT_HOST", _closed_url())
    return monkeypatch


def _embedded(monkeypatch: pytest.MonkeyPatch, found: bool) -> None:
    probe = Probe(None, "embedded", "using the embedded SmolLM2-135M model") if found else None
    monkeypatch.setattr(LlamaCppBinding, "probe", classmethod(lambda cls, client: probe))


@pytest.fixture
def no_embedded(nothing_runs: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    _embedded(nothing_runs, False)
    return nothing_runs


@pytest.fixture
def blackholes() -> Iterator[list[str]]:
    """Three ports that accept connections and never answer."""
    sockets = []
    for _ in range(3):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        sockets.append(s)
    yield [f"http://127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()


@pytest.fixture
def slow_webui() -> Iterator[str]:
    """A lollms-webui stand-in that takes 0.2 s to list its models."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(0.2)
            body = json.dumps(["slow-model"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_nothing_running_picks_the_embedded_model_fast(nothing_runs: pytest.MonkeyPatch) -> None:
    start = time.perf_counter()
    choice = auto.choose_binding()
    elapsed = time.perf_counter() - start
    assert choice.name == "llamacpp"
    assert choice.host is None
    assert choice.model == "SmolLM2-135M-Instruct.Q4_1"
    assert choice.reason == (
        "using the embedded SmolLM2-135M model; nothing answered for lollms, ollama, openai, colab"
    )
    assert elapsed < 2.0


def test_nothing_at_all_raises_one_message(no_embedded: pytest.MonkeyPatch) -> None:
    with pytest.raises(NoBackendError) as info:
        auto.choose_binding()
    message = str(info.value)
    assert "\n" not in message
    for way in ("LoLLMs", "Ollama", "OPENAI_API_KEY", "OPENAI_BASE_URL", "lollms-magics[local]"):
        assert way in message


def test_probes_run_concurrently(nothing_runs: pytest.MonkeyPatch, blackholes: list[str]) -> None:
    webui, server, ollama_url = blackholes
    nothing_runs.setattr(lollms, "WEBUI_HOST", webui)
    nothing_runs.setattr(lollms, "SERVER_HOST", server)
    nothing_runs.setattr(ollama, "DEFAULT_HOST", ollama_url)
    _embedded(nothing_runs, True)
    start = time.perf_counter()
    choice = auto.choose_binding(timeout=1.0)
    elapsed = time.perf_counter() - start
    assert choice.name == "llamacpp"
    assert elapsed < 2.5  # three silent servers probed one after another would take 3 s


def test_lollms_webui_comes_first(
    nothing_runs: pytest.MonkeyPatch, lollms_webui_server, lollms_server, ollama_server
) -> None:
    nothing_runs.setattr(lollms, "WEBUI_HOST", lollms_webui_server.url)
    nothing_runs.setattr(lollms, "SERVER_HOST", lollms_server.url)
    nothing_runs.setenv("LOLLMS_API_KEY", LOLLMS_KEY)
    nothing_runs.setenv("OLLAMA_HOST", ollama_server.url)
    nothing_runs.setenv("OPENAI_API_KEY", "sk-test")
    choice = auto.choose_binding()
    assert (choice.name, choice.host) == ("lollms", lollms_webui_server.url)
    assert "lollms-webui" in choice.reason


def test_new_lollms_server_comes_before_ollama(
    nothing_runs: pytest.MonkeyPatch, lollms_server, ollama_server
) -> None:
    nothing_runs.setattr(lollms, "WEBUI_HOST", ollama_server.url)  # answers 404 there
    nothing_runs.setattr(lollms, "SERVER_HOST", lollms_server.url)
    nothing_runs.setenv("LOLLMS_API_KEY", LOLLMS_KEY)
    nothing_runs.setenv("OLLAMA_HOST", ollama_server.url)
    choice = auto.choose_binding()
    assert (choice.name, choice.host) == ("lollms", lollms_server.url)


def test_slow_lollms_still_wins_over_fast_ollama(
    nothing_runs: pytest.MonkeyPatch, slow_webui: str, ollama_server
) -> None:
    nothing_runs.setattr(lollms, "WEBUI_HOST", slow_webui)
    nothing_runs.setenv("OLLAMA_HOST", ollama_server.url)
    choice = auto.choose_binding()
    assert (choice.name, choice.host) == ("lollms", slow_webui)


def test_ollama_comes_before_openai(nothing_runs: pytest.MonkeyPatch, ollama_server) -> None:
    nothing_runs.setenv("OLLAMA_HOST", ollama_server.url)
    nothing_runs.setenv("OPENAI_API_KEY", "sk-test")
    choice = auto.choose_binding()
    assert choice.name == "ollama"
    assert choice.host == ollama_server.url
    assert choice.model == "test-model:latest"
    assert "Ollama" in choice.reason and "2 models" in choice.reason


def test_ollama_default_address_is_probed(nothing_runs: pytest.MonkeyPatch, ollama_server) -> None:
    nothing_runs.setattr(ollama, "DEFAULT_HOST", ollama_server.url)
    assert auto.choose_binding().name == "ollama"


def test_ollama_without_models_is_passed_over(
    no_embedded: pytest.MonkeyPatch, ollama_server
) -> None:
    ollama_server.models = []
    no_embedded.setenv("OLLAMA_HOST", ollama_server.url)
    no_embedded.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1")
    choice = auto.choose_binding()
    assert (choice.name, choice.host) == ("openai", "http://127.0.0.1:8080/v1")
    assert "no model pulled" in choice.reason


def test_openai_key_chooses_openai(nothing_runs: pytest.MonkeyPatch) -> None:
    nothing_runs.setenv("OPENAI_API_KEY", "sk-test")
    choice = auto.choose_binding()
    assert (choice.name, choice.host, choice.model) == ("openai", None, "gpt-4o-mini")
    assert "sk-test" not in choice.reason
    assert "OPENAI_API_KEY" in choice.reason


def test_openai_server_via_base_url(nothing_runs: pytest.MonkeyPatch, openai_server) -> None:
    url = openai_server.url + "/v1"
    nothing_runs.setenv("OPENAI_BASE_URL", url)
    choice = auto.choose_binding()
    assert (choice.name, choice.host) == ("openai", url)


def test_a_different_server_on_a_lollms_port_is_ignored(
    nothing_runs: pytest.MonkeyPatch, openai_server
) -> None:
    # An OpenAI-style server has no /list_models: it is not taken for lollms-webui.
    nothing_runs.setattr(lollms, "WEBUI_HOST", openai_server.url)
    _embedded(nothing_runs, True)
    assert auto.choose_binding().name == "llamacpp"


def test_the_chosen_lollms_binding_does_not_probe_again(
    nothing_runs: pytest.MonkeyPatch, lollms_webui_server
) -> None:
    from lollms_magics import get_binding

    nothing_runs.setattr(lollms, "WEBUI_HOST", lollms_webui_server.url)
    choice = auto.choose_binding()
    probes = len(lollms_webui_server.requests)
    binding = get_binding(choice.name, host=choice.host)
    assert binding.generate("hi", n_predict=2).text
    paths = [r.path for r in lollms_webui_server.requests[probes:]]
    assert paths == ["/lollms_generate"]  # the protocol found by the probe was reused
    binding.close()


class PluginBinding(LlamaCppBinding):
    """A third-party binding (declared like any other) that takes part in the automatic choice."""

    name = "plugin"
    auto_priority = 15  # between LoLLMs (10) and Ollama (20)

    @classmethod
    def probe(cls, client: object) -> Probe | None:
        return Probe("http://plugin.test", "plugin-model", "the plugin's server answered")


def test_a_third_party_binding_takes_part_in_the_automatic_choice(
    nothing_runs: pytest.MonkeyPatch, ollama_server
) -> None:
    from lollms_magics import bindings

    nothing_runs.setattr(
        bindings.REGISTRY, "found", {**bindings.REGISTRY.targets(), "plugin": "tests.test_auto:PluginBinding"}
    )
    nothing_runs.setenv("OLLAMA_HOST", ollama_server.url)  # answers, but comes later
    choice = auto.choose_binding()
    assert (choice.name, choice.host, choice.model) == ("plugin", "http://plugin.test", "plugin-model")
    assert choice.reason == "the plugin's server answered; nothing answered for lollms"


def test_a_broken_third_party_probe_is_skipped_with_a_warning(nothing_runs: pytest.MonkeyPatch) -> None:
    from lollms_magics import bindings
    from lollms_magics.errors import LollmsMagicsWarning

    def broken(cls: object, client: object) -> None:
        raise RuntimeError("plugin bug")

    nothing_runs.setattr(PluginBinding, "probe", classmethod(broken))
    nothing_runs.setattr(
        bindings.REGISTRY, "found", {**bindings.REGISTRY.targets(), "plugin": "tests.test_auto:PluginBinding"}
    )
    _embedded(nothing_runs, True)
    with pytest.warns(LollmsMagicsWarning, match="skipped binding 'plugin': its probe failed"):
        assert auto.choose_binding().name == "llamacpp"
