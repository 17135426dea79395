"""The fallback chain: a backend that fails before its first text is replaced by the next one.

Against the loopback servers: a refused port, a 429 storm, a 5xx, a stream
that breaks after text (never switched), every backend failing; the
magics' ``--fallback-to`` and ``%config LollmsMagics.fallbacks``, ``%lollms
status``, and ``--each``.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from lollms_magics import replay
from lollms_magics.core.session import Session
from lollms_magics.errors import RateLimitError, ServerUnreachableError, StreamBrokenError
from lollms_magics.ipython.failure import CellFailure
from tests.shell import CHOICE, magics_shell


def refused_url() -> str:
    """A loopback URL where nothing listens (a port just freed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def generations(server: Any) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/chat/completions"))


def test_a_refused_server_is_answered_by_the_next_and_the_answer_says_so(openai_server: Any) -> None:
    dead = refused_url()
    backup = f"openai:test-model@{openai_server.url}/v1"
    s = Session("openai", model="test-model", host=dead, fallbacks=[backup])
    response = s.ask("Name a moon.")
    assert response.text == "Echo: Name a moon."
    assert response.done and response.error is None
    assert generations(openai_server) == 1
    meta = response.metadata()
    assert meta["fallback"]["answered_by"] == f"openai:test-model@{openai_server.url}/v1"
    assert meta["fallback"]["failed"][0]["backend"] == "openai:test-model"
    assert "refused" in meta["fallback"]["failed"][0]["error"].lower()
    notes = response.notes
    assert any(note.startswith(f"answered by {backup} after openai:test-model failed") for note in notes)
    rows = dict(s.status(check=False).rows)
    assert "failed (cannot reach openai at " + dead in rows["switched"]
    assert rows["switched"].endswith("answered")
    # The conversation goes on, the exchange held with the backend that answered.
    assert s.history()[0].answer == "Echo: Name a moon."


def test_a_429_storm_spends_its_retries_then_the_fallback_answers(
    openai_server: Any, ollama_server: Any
) -> None:
    openai_server.fail_next = [(429, {"Retry-After": "0"})] * 20
    s = Session("openai", model="test-model", host=openai_server.url + "/v1",
                fallbacks=[f"ollama:test-model@{ollama_server.url}"])
    s.binding_config["max_retries"] = 2
    response = s.ask("Hello")
    assert response.text == "Echo: Hello"
    assert (response.binding, response.model) == ("ollama", "test-model")
    assert generations(openai_server) == 3  # the first try and its two retries, then the switch
    assert response.fallback is not None and "rate limiting" in response.fallback["failed"][0]["error"]


def test_a_stream_broken_after_text_is_not_switched(openai_server: Any, ollama_server: Any) -> None:
    s = Session("openai", model="fail-midstream", host=openai_server.url + "/v1",
                fallbacks=[f"ollama:test-model@{ollama_server.url}"])
    response = s.ask("Tell me a long story")
    pieces: list[str] = []
    with pytest.raises(StreamBrokenError):
        for piece in response:
            pieces.append(piece)
    assert pieces and response.text == "".join(pieces)  # what came is kept, and only that
    assert response.binding == "openai" and response.fallback is None
    assert not [r for r in ollama_server.requests if r.path == "/api/chat"]  # never asked


def test_a_busy_server_is_asked_again_in_a_later_round(openai_server: Any) -> None:
    openai_server.fail_next = [(429, {"Retry-After": "0"})] * 4  # two rounds of the try and its retry
    dead = refused_url()
    s = Session("openai", model="test-model", host=openai_server.url + "/v1", fallbacks=[f"openai@{dead}"])
    s.binding_config["max_retries"] = 1
    started = time.monotonic()
    response = s.ask("Wait for me")
    assert response.text == "Echo: Wait for me" and response.done
    assert generations(openai_server) == 5  # 429, 429 | pause | 429, 429 | pause | answered
    assert 1.5 < time.monotonic() - started < 60  # two pauses of a second, on a loaded machine
    assert response.fallback is not None
    assert response.fallback["answered_by"] == "openai:test-model"  # the chosen backend, in a later round
    (failure,) = response.fallback["failed"]  # the dead fallback; the server's own 429s are not failures
    assert failure["backend"] == f"openai@{dead}" and "cannot reach" in failure["error"]


def test_when_every_backend_fails_the_first_error_names_the_others(openai_server: Any) -> None:
    openai_server.fail_next = [(503, {})] * 20
    dead = refused_url()
    s = Session("openai", model="test-model", host=openai_server.url + "/v1", fallbacks=[f"openai@{dead}"])
    s.binding_config["max_retries"] = 0
    response = s.ask("Hi")
    with pytest.raises(Exception) as caught:
        _ = response.text
    message = str(caught.value)
    assert "503" in message and "the fallbacks failed too: openai@" + dead in message
    assert response.binding == "openai" and response.error is caught.value
    assert dict(s.status(check=False).rows)["switched"].endswith("none answered")


def test_a_quota_used_up_switches_at_once(openai_server: Any, ollama_server: Any) -> None:
    openai_server.fail_next = [(429, {}, "insufficient_quota")]
    s = Session("openai", model="test-model", host=openai_server.url + "/v1",
                fallbacks=[f"ollama:test-model@{ollama_server.url}"])
    assert s.ask("Quota?").text == "Echo: Quota?"
    assert generations(openai_server) == 1  # a used-up quota is not retried


def test_without_fallbacks_the_failure_is_the_same_as_before() -> None:
    s = Session("openai", model="test-model", host=refused_url())
    with pytest.raises(ServerUnreachableError):
        _ = s.ask("Hi").text
    assert "switched" not in dict(s.status(check=False).rows)


def test_a_fallback_equal_to_the_backend_is_not_asked_twice(openai_server: Any) -> None:
    openai_server.fail_next = [(429, {"Retry-After": "0"})] * 20
    s = Session("openai", model="test-model", host=openai_server.url + "/v1", fallbacks=["openai:test-model"])
    s.binding_config["max_retries"] = 0
    with pytest.raises(RateLimitError):
        _ = s.ask("Hi").text
    assert generations(openai_server) == 1


def test_each_item_of_a_map_falls_back(openai_server: Any) -> None:
    backup = f"openai:test-model@{openai_server.url}/v1"
    s = Session("openai", model="test-model", host=refused_url(), fallbacks=[backup])
    result = s.map("Say {item}", ["one", "two", "three"])
    assert result.results == ["Echo: Say one", "Echo: Say two", "Echo: Say three"]
    assert generations(openai_server) == 3


# -- the magics --------------------------------------------------------------


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch):
    replay.stop()
    unset = (*CHOICE, "OPENAI_API_KEY", "OPENAI_BASE_URL", replay.ENV_REPLAY, replay.ENV_RECORD)
    with magics_shell(monkeypatch, unset=unset, load_ext=True, stream_to="display", footer=True) as shell:
        yield shell
    replay.stop()


def run(ip: Any, line: str, body: str | None = None) -> Any:
    with capture_output() as cap:
        if body is None:
            ip.run_line_magic("lollms", line)
        else:
            ip.run_cell_magic("lollms", line, body)
    return cap


def test_fallback_to_for_one_cell_shows_who_answered(ip: Any, ollama_server: Any) -> None:
    dead = refused_url()
    cap = run(ip, f"-b openai:test-model --host {dead} --fallback-to ollama:test-model@{ollama_server.url}",
              "Name a planet.")
    final = cap.outputs[-1]
    info = final.metadata["lollms_magics"]
    assert final.data["text/markdown"].startswith("Echo: Name a planet.")
    assert (info["binding"], info["model"]) == ("ollama", "test-model")
    assert info["fallback"]["failed"][0]["backend"] == "openai:test-model"
    assert f"answered by ollama:test-model@{ollama_server.url}" in final.data["text/markdown"]  # the footer
    magics = ip.magics_manager.registry["LollmsMagics"]
    assert magics.session.fallbacks == []  # for that cell only
    status = run(ip, "status").stdout
    assert "switched" in status and "openai:test-model failed (cannot reach openai" in status


def test_config_fallbacks_serve_every_cell_and_a_typo_is_a_usage_error(ip: Any, ollama_server: Any) -> None:
    ip.run_line_magic("config", f'LollmsMagics.fallbacks = ["ollama:test-model@{ollama_server.url}"]')
    magics = ip.magics_manager.registry["LollmsMagics"]
    assert magics.session.fallbacks == [f"ollama:test-model@{ollama_server.url}"]
    cap = run(ip, f"-b openai:test-model --host {refused_url()}", "Hi")
    assert cap.outputs[-1].metadata["lollms_magics"]["binding"] == "ollama"
    with pytest.raises(UsageError, match="olama"):
        run(ip, f"-b openai --host {refused_url()} --fallback-to olama", "Hi")
    ip.run_line_magic("config", "LollmsMagics.fallbacks = []")


def test_a_failed_chain_fails_the_cell_with_one_line(ip: Any) -> None:
    dead, also_dead = refused_url(), refused_url()
    with pytest.raises(CellFailure, match="the fallbacks failed too: openai@"):
        run(ip, f"-b openai:test-model --host {dead} --fallback-to openai@{also_dead}", "Hi")


# -- pictures ------------------------------------------------------------------


def test_a_picture_comes_from_the_image_fallback_when_the_server_is_down(a1111_server: Any) -> None:
    dead = refused_url().removesuffix("/v1")
    s = Session(image_fallbacks=[f"a1111@{a1111_server.url}"])
    s.use_image("a1111", host=dead)
    result = s.image("a red fox", width=64, height=64)
    assert result.binding == "a1111" and len(result.images) == 1
    meta = result.metadata()
    assert meta["fallback"]["answered_by"] == f"a1111@{a1111_server.url}"
    assert meta["fallback"]["failed"][0]["backend"] == f"a1111@{dead}"
    assert "cannot reach" in meta["fallback"]["failed"][0]["error"]
    assert f"a1111@{a1111_server.url} answered" in dict(s.status(check=False).rows)["switched"]
    assert s.image_fallbacks == [f"a1111@{a1111_server.url}"]


def test_a_picture_fails_with_every_image_backend_named(a1111_server: Any) -> None:
    a1111_server.fail_next = [(503, {})] * 10
    dead = refused_url().removesuffix("/v1")
    s = Session(image_fallbacks=[f"a1111@{dead}"])
    s.use_image("a1111", host=a1111_server.url, max_retries=0)
    with pytest.raises(Exception, match="the fallbacks failed too: a1111@" + dead):
        s.image("a red fox", width=64, height=64)


@pytest.mark.model
def test_cells_falling_back_together_queue_behind_the_embedded_model() -> None:
    """Three students' cells at once, their server down: the one embedded model answers each in turn."""
    import threading

    from tests.conftest import require_embedded_model

    require_embedded_model()
    dead = refused_url()
    answers: list[Any] = []

    def student(n: int) -> None:
        s = Session("openai", model="test-model", host=dead, fallbacks=["llamacpp"])
        answers.append(s.ask(f"Name the number {n}.", n_predict=6, temperature=0, history=False))
        _ = answers[-1].text

    threads = [threading.Thread(target=student, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(answers) == 3
    assert all(a.done and a.text.strip() and a.binding == "llamacpp" for a in answers)


def test_a_summary_falls_back_for_each_of_its_calls(openai_server: Any) -> None:
    backup = f"openai:test-model@{openai_server.url}/v1"
    s = Session("openai", model="test-model", host=refused_url(), fallbacks=[backup])
    text = " ".join(f"Sentence {i} says that the tide rises twice a day." for i in range(300))
    summary = s.summarize(text, ctx_size=1200, mode="map-reduce")
    calls = generations(openai_server)
    assert calls >= 3  # several parts and their reduction, every one answered by the fallback
    assert str(summary).strip()
    assert dict(s.status(check=False).rows)["switched"].endswith(f"{backup} answered")
