"""End to end: the ``openai`` binding against llama-cpp-python's own OpenAI-compatible server.

The server serves the embedded SmolLM2 GGUF on loopback; it is started once
for the module and killed afterwards. At temperature 0 its answers must match
the in-process ``llamacpp`` binding's, since both run the same llama.cpp code
on the same file with the same settings.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lollms_magics import get_binding
from tests.llama_server import running_llama_server

pytestmark = [pytest.mark.model, pytest.mark.server]

# The server's defaults differ from llama_cpp's Python API (repeat_penalty 1.1
# there, 1.0 here), so the comparison sends every sampling setting.
SETTINGS = {"temperature": 0, "seed": 1, "top_k": 40, "top_p": 0.95, "repeat_penalty": 1.1}
PROMPT = "Write one sentence about cats."


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (``.../v1``) of a running ``llama_cpp.server`` (tests/llama_server.py)."""
    with running_llama_server(tmp_path_factory.mktemp("llama_server")) as url:
        yield url


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
