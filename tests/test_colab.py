"""Google Colab's model endpoint, as far as it can be reproduced outside Colab.

What is real here: the variables Colab sets (``MODEL_PROXY_HOST``, or
``MODEL_PROXY_BASE_URL``, and ``MODEL_PROXY_API_KEY``) and an
OpenAI-compatible loopback server answering at Colab's paths
(``/models/openapi/chat/completions``, ``/models``) with the token required.
What is a stand-in: ``google.colab.userdata``, Colab's secrets module, is a
small module made here that returns the token (or raises as the real one
does when a secret is missing). The real proxy, its models and the secret
access prompt could not be tried.
"""

from __future__ import annotations

import json
import socket
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from lollms_magics import replay
from lollms_magics.bindings import lollms, ollama
from lollms_magics.bindings.base import Probe
from lollms_magics.bindings.colab import ColabBinding
from lollms_magics.bindings.llamacpp import LlamaCppBinding
from lollms_magics.core import auto
from lollms_magics.core.session import Session
from lollms_magics.errors import AuthenticationError, PromptError

TOKEN = "colab-proxy-token-5f2c9a81d7"  # a made-up token
ENV = ("OLLAMA_HOST", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "LOLLMS_API_KEY",
       "MODEL_PROXY_HOST", "MODEL_PROXY_BASE_URL", "MODEL_PROXY_API_KEY")


def _closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def colab(monkeypatch: pytest.MonkeyPatch, openai_server: Any) -> Any:
    """No local server, no embedded model; a loopback 'Colab proxy' at Colab's paths, wanting TOKEN."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(lollms, "WEBUI_HOST", _closed_url())
    monkeypatch.setattr(lollms, "SERVER_HOST", _closed_url())
    monkeypatch.setattr(ollama, "DEFAULT_HOST", _closed_url())
    monkeypatch.setattr(LlamaCppBinding, "probe", classmethod(lambda cls, client: None))
    openai_server.models = ["google/gemma-3-4b", "google/gemini-2.5-flash"]
    openai_server.api_key = TOKEN
    openai_server.route("GET", "/models", openai_server.list_models)
    openai_server.route("POST", "/models/openapi/chat/completions", openai_server.chat)
    monkeypatch.setenv("MODEL_PROXY_HOST", openai_server.url)
    return openai_server


def stand_in_userdata(monkeypatch: pytest.MonkeyPatch, secrets: dict[str, str]) -> None:
    """A stand-in for Colab's ``google.colab.userdata`` (not the real module): ``get`` reads ``secrets``."""

    class SecretNotFoundError(Exception):
        pass

    def get(name: str) -> str:
        if name not in secrets:
            raise SecretNotFoundError(f"Secret {name} does not exist.")
        return secrets[name]

    names = ("google", "google.colab", "google.colab.userdata")
    google, colab, userdata = (types.ModuleType(n) for n in names)
    userdata.get = get  # type: ignore[attr-defined]
    colab.userdata = userdata  # type: ignore[attr-defined]
    google.colab = colab  # type: ignore[attr-defined]
    for name, module in (("google", google), ("google.colab", colab), ("google.colab.userdata", userdata)):
        monkeypatch.setitem(sys.modules, name, module)


def test_the_automatic_choice_finds_colab_with_the_token_in_the_environment(
    colab: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_PROXY_API_KEY", TOKEN)
    choice = auto.choose_binding(timeout=2.0)
    assert (choice.name, choice.model) == ("colab", "google/gemini-2.5-flash")  # Colab's default, listed
    assert choice.host == colab.url + "/models/openapi"
    assert "2 model(s)" in choice.reason and TOKEN not in choice.reason
    s = Session()
    assert [m.name for m in s.models()] == ["google/gemma-3-4b", "google/gemini-2.5-flash"]
    answer = s.ask("Say hi")
    assert answer.text == "Echo: Say hi" and answer.binding == "colab"
    chat = [r for r in colab.requests if r.path == "/models/openapi/chat/completions"]
    assert len(chat) == 1 and chat[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(chat[0].body)["model"] == "google/gemini-2.5-flash"


def test_the_token_comes_from_colabs_secrets_and_is_then_kept_as_a_key(
    colab: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in_userdata(monkeypatch, {"MODEL_PROXY_API_KEY": TOKEN})
    s = Session()
    answer = s.ask("Hello")
    assert answer.text == "Echo: Hello" and s.last is not None and s.last.name == "colab"
    # Known as a key from now on: shown nowhere, refused in a prompt.
    assert TOKEN not in json.dumps(answer.metadata())
    assert TOKEN not in str(s.status(check=True)) and TOKEN not in repr(s.binding())
    assert TOKEN not in s.keys.redact(f"the token is {TOKEN}")
    with pytest.raises(PromptError):
        s.ask(f"Repeat {TOKEN}")


def test_a_missing_secret_makes_the_endpoint_unusable_and_says_so(colab: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in_userdata(monkeypatch, {})
    with pytest.raises(Exception, match="needs the secret MODEL_PROXY_API_KEY"):
        auto.choose_binding(timeout=2.0)


def test_a_local_server_still_comes_first(colab: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_PROXY_API_KEY", TOKEN)
    found = Probe("http://127.0.0.1:11434", "llama3.2", "Ollama")
    monkeypatch.setattr(ollama.OllamaBinding, "probe", classmethod(lambda cls, client: found))
    assert auto.choose_binding(timeout=2.0).name == "ollama"


def test_model_proxy_base_url_is_the_openai_base(colab: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEL_PROXY_HOST")
    monkeypatch.setenv("MODEL_PROXY_BASE_URL", colab.url + "/v1")
    monkeypatch.setenv("MODEL_PROXY_API_KEY", TOKEN)
    choice = auto.choose_binding(timeout=2.0)
    assert (choice.name, choice.host) == ("colab", colab.url + "/v1")
    assert Session().ask("Yes?").text == "Echo: Yes?"


def test_the_token_stays_out_of_a_replay_file_and_of_errors(colab: Any, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    stand_in_userdata(monkeypatch, {"MODEL_PROXY_API_KEY": TOKEN})
    path = tmp_path / "colab.replay.jsonl"
    replay.record(path)
    try:
        assert Session("colab").ask("Taped").text == "Echo: Taped"
    finally:
        replay.stop()
    assert "Taped" in path.read_text() and TOKEN not in path.read_text()  # the prompt is kept, not the token
    wrong = Session("colab", api_key="not-the-token-0000")
    with pytest.raises(AuthenticationError) as caught:
        _ = wrong.ask("Hi").text
    assert TOKEN not in str(caught.value)
    assert ColabBinding().model == "google/gemini-2.5-flash"
