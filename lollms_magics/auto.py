"""The automatic choice of backend, for when the user has chosen none.

In order of preference:

1. a LoLLMs server on its default ports (lollms-webui on 9600, the new
   server on 9642);
2. Ollama (``OLLAMA_HOST``, else ``http://127.0.0.1:11434``) with at least
   one model pulled;
3. an OpenAI-compatible endpoint, when ``OPENAI_API_KEY`` or
   ``OPENAI_BASE_URL`` is set;
4. the embedded SmolLM2-135M model, when the ``local`` extra is installed.

The HTTP candidates are probed at the same time, each with a short timeout,
so a machine where nothing runs spends about one timeout on probing; the
order above still decides between the servers that answered.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import NoBackendError

if TYPE_CHECKING:
    import httpx

__all__ = ["AutoChoice", "choose_binding"]

LOLLMS_WEBUI_URL = "http://localhost:9600"
LOLLMS_SERVER_URL = "http://localhost:9642"
OLLAMA_URL = "http://127.0.0.1:11434"
OPENAI_DEFAULT_MODEL = "gpt-4o-mini"  # api.openai.com lists models no chat can use first

NO_BACKEND_MESSAGE = (
    "no model found: start LoLLMs (port 9600 or 9642) or Ollama (`ollama serve`, then "
    "`ollama pull <model>`), set OPENAI_API_KEY or OPENAI_BASE_URL for an OpenAI-compatible "
    "server, or install the embedded model with pip install 'lollms-magics[local]'"
)


@dataclass(frozen=True)
class AutoChoice:
    """The backend chosen automatically, and why (shown by ``%lollms status``)."""

    name: str
    host: str | None
    model: str | None
    reason: str


@dataclass(frozen=True)
class _Answer:
    """What a probed server said: its models, or None when it did not answer as expected."""

    models: list[str] | None


def choose_binding(timeout: float = 0.5) -> AutoChoice:
    """Find the backend to use when none was chosen; see the module docstring for the order.

    ``timeout`` bounds each HTTP probe (connect and read); the probes run
    concurrently. Raises :class:`~lollms_magics.errors.NoBackendError` when
    nothing is available.
    """
    import httpx

    from .bindings.base import normalize_host
    from .bindings.lollms import remember_protocol

    ollama_env = os.environ.get("OLLAMA_HOST")
    ollama_url = normalize_host(ollama_env, 11434) if ollama_env else OLLAMA_URL
    lollms_key = os.environ.get("LOLLMS_API_KEY")
    probes = {
        "webui": (LOLLMS_WEBUI_URL + "/list_models", None, _webui_models),
        "v1": (LOLLMS_SERVER_URL + "/v1/models", lollms_key, _v1_models),
        "ollama": (ollama_url + "/api/tags", None, _ollama_models),
    }
    client = httpx.Client(
        timeout=httpx.Timeout(timeout), trust_env=False, follow_redirects=False
    )
    pool = ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="lollms-probe")
    try:
        futures: dict[str, Future[_Answer]] = {
            name: pool.submit(_probe, client, url, key, read)
            for name, (url, key, read) in probes.items()
        }
        # Wait in order of preference: a later probe's answer matters only
        # when every earlier one came back empty.
        webui = futures["webui"].result()
        if webui.models is not None:
            remember_protocol(LOLLMS_WEBUI_URL, "webui")  # the binding need not probe again
            return AutoChoice(
                "lollms", LOLLMS_WEBUI_URL, None,
                f"a LoLLMs server (lollms-webui) answered at {LOLLMS_WEBUI_URL}",
            )
        v1 = futures["v1"].result()
        if v1.models is not None:
            remember_protocol(LOLLMS_SERVER_URL, "v1")
            return AutoChoice(
                "lollms", LOLLMS_SERVER_URL, None,
                f"a LoLLMs server answered at {LOLLMS_SERVER_URL}",
            )
        ollama = futures["ollama"].result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        client.close()
    if ollama.models:
        first = ollama.models[0]
        return AutoChoice(
            "ollama", ollama_url, first,
            f"no LoLLMs server answered on localhost; Ollama at {ollama_url} has "
            f"{_count(len(ollama.models), 'model')}, using {first}",
        )
    nothing = "no LoLLMs or Ollama server answered on localhost"
    if ollama.models == []:
        nothing = f"no LoLLMs server answered and Ollama at {ollama_url} has no model pulled"

    base_url = os.environ.get("OPENAI_BASE_URL")
    if base_url:
        return AutoChoice(
            "openai", base_url, os.environ.get("OPENAI_MODEL"),
            f"{nothing}; OPENAI_BASE_URL is set, using {base_url}",
        )
    if os.environ.get("OPENAI_API_KEY"):
        model = os.environ.get("OPENAI_MODEL") or OPENAI_DEFAULT_MODEL
        return AutoChoice(
            "openai", None, model,
            f"{nothing}; OPENAI_API_KEY is set, using OpenAI's {model}",
        )

    embedded = _embedded_model()
    if embedded is not None:
        return AutoChoice(
            "llamacpp", None, embedded,
            f"{nothing} and no OpenAI key is set; using the embedded SmolLM2-135M model",
        )
    raise NoBackendError(NO_BACKEND_MESSAGE)


def _embedded_model() -> str | None:
    """The embedded model's name if llama_cpp and its GGUF are installed (nothing is loaded)."""
    from .bindings.llamacpp import default_model_path, llama_cpp_installed

    if not llama_cpp_installed():
        return None
    path = default_model_path()
    return path.name.removesuffix(".gguf") if path is not None else None


def _probe(client: httpx.Client, url: str, key: str | None, read: Any) -> _Answer:
    """GET ``url``; the server's models if it answered as the expected server, else None."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else None
    try:
        response = client.get(url, headers=headers)
        if response.status_code != 200:
            return _Answer(None)
        models: list[str] | None = read(response.json())
    except (httpx.HTTPError, ValueError):
        return _Answer(None)
    return _Answer(models)


def _webui_models(data: Any) -> list[str] | None:
    if not isinstance(data, list):
        return None
    return [str(m) for m in data]


def _v1_models(data: Any) -> list[str] | None:
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    return [str(m["id"]) for m in items if isinstance(m, dict) and "id" in m]


def _ollama_models(data: Any) -> list[str] | None:
    items = data.get("models") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    return [str(m["name"]) for m in items if isinstance(m, dict) and "name" in m]


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
