"""Record against the loopback servers, stop them, replay: same text, pacing and pictures, no secret."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from lollms_magics import get_binding, replay
from lollms_magics.errors import NotRecordedError, ServerUnreachableError
from lollms_magics.tti import get_image_binding
from tests.servers import LOLLMS_KEY


@pytest.fixture(autouse=True)
def _no_tape():
    """No test leaves a tape on for the next."""
    replay.stop()
    yield
    replay.stop()


@pytest.fixture
def tape_file(tmp_path: Path) -> Path:
    return tmp_path / "answers.replay.jsonl"


def timed(response: Any) -> list[tuple[float, str]]:
    """Each piece of ``response`` with the seconds since it was asked for."""
    start = time.perf_counter()
    return [(time.perf_counter() - start, piece) for piece in response]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_stream_replays_the_same_pieces_at_the_recorded_pace(openai_server: Any, tape_file: Path) -> None:
    openai_server.slow_pieces, openai_server.slow_delay = 8, 0.06
    host = openai_server.url
    replay.record(tape_file)
    live_binding = get_binding("openai", host=host, model="slow")
    live = timed(live_binding.generate("Count for me", temperature=0))
    live_binding.close()
    replay.stop()
    openai_server.stop()  # from here on nothing answers at that address

    replay.replay(tape_file)
    binding = get_binding("openai", host=host, model="slow")
    response = binding.generate("Count for me", temperature=0)
    replayed = timed(response)
    assert [p for _, p in replayed] == [p for _, p in live] == [" tok"] * 8
    assert response.finish_reason == "stop"
    assert response.completion_tokens == 8
    # The pieces were 60 ms apart when recorded; so they are when replayed.
    live_span = live[-1][0] - live[0][0]
    replayed_span = replayed[-1][0] - replayed[0][0]
    assert live_span > 0.35
    assert abs(replayed_span - live_span) < 0.15
    for (live_at, _), (replayed_at, _) in zip(live, replayed, strict=True):
        assert abs((replayed_at - replayed[0][0]) - (live_at - live[0][0])) < 0.1


def test_speed_factor_and_no_waiting(openai_server: Any, tape_file: Path) -> None:
    openai_server.slow_pieces, openai_server.slow_delay = 6, 0.25
    host = openai_server.url
    replay.record(tape_file)
    get_binding("openai", host=host, model="slow").generate("Go").text  # noqa: B018
    replay.stop()
    openai_server.stop()

    replay.replay(tape_file, speed=0)
    start = time.perf_counter()
    text = get_binding("openai", host=host, model="slow").generate("Go").text
    assert text == " tok" * 6
    assert time.perf_counter() - start < 0.6  # 1.25 s of pacing skipped

    replay.replay(tape_file, speed=2)
    pieces = timed(get_binding("openai", host=host, model="slow").generate("Go"))
    span = pieces[-1][0] - pieces[0][0]
    assert 0.55 < span < 1.2  # 5 gaps of 250 ms, halved (1.25 s unhalved)


def test_model_lists_and_non_streamed_answers_replay(ollama_server: Any, tape_file: Path) -> None:
    host = ollama_server.url
    replay.record(tape_file)
    binding = get_binding("ollama", host=host, model="test-model")
    live_models = [m.name for m in binding.list_models()]
    live_text = binding.generate("Hello, Ollama", stream=False, seed=3).text
    replay.stop()
    ollama_server.stop()

    replay.replay(tape_file)
    binding = get_binding("ollama", host=host, model="test-model")
    assert [m.name for m in binding.list_models()] == live_models
    assert "test-model:latest" in live_models
    assert binding.generate("Hello, Ollama", stream=False, seed=3).text == live_text == "Echo: Hello, Ollama"


def test_a_prompt_not_in_the_file_is_one_line_naming_it(openai_server: Any, tape_file: Path) -> None:
    replay.record(tape_file)
    get_binding("openai", host=openai_server.url, model="test-model").generate("Recorded").text  # noqa: B018
    replay.stop()
    openai_server.requests.clear()
    replay.replay(tape_file)
    binding = get_binding("openai", host=openai_server.url, model="test-model")
    with pytest.raises(NotRecordedError) as info:
        _ = binding.generate("Never recorded").text
    assert str(info.value) == (
        f"the replay file {tape_file} has no answer for the prompt 'Never recorded' "
        "(POST /v1/chat/completions); record it with %lollms record FILE --missing, "
        "or replay with --fallback embedded (or live) to have it answered"
    )
    assert isinstance(info.value, ServerUnreachableError)
    # Other options are another request: the same prompt at another temperature is not in the file.
    with pytest.raises(NotRecordedError):
        _ = binding.generate("Recorded", temperature=0.9).text
    assert openai_server.requests == []  # nothing went live


def test_fallback_goes_live_only_for_what_the_file_lacks(openai_server: Any, tape_file: Path) -> None:
    replay.record(tape_file)
    get_binding("openai", host=openai_server.url, model="test-model").generate("Recorded").text  # noqa: B018
    replay.stop()
    openai_server.requests.clear()

    replay.replay(tape_file, fallback=True)
    binding = get_binding("openai", host=openai_server.url, model="test-model")
    assert binding.generate("Recorded").text == "Echo: Recorded"
    assert openai_server.requests == []  # answered from the file
    assert binding.generate("Not recorded").text == "Echo: Not recorded"
    assert [r.path for r in openai_server.requests] == ["/v1/chat/completions"]


def test_the_file_holds_no_key_no_authorization_no_client_id(
    lollms_server: Any, lollms_webui_server: Any, tape_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_lollms, env_openai = secrets.token_hex(16), "sk-" + secrets.token_hex(20)
    monkeypatch.setenv("LOLLMS_API_KEY", env_lollms)
    monkeypatch.setenv("OPENAI_API_KEY", env_openai)
    lollms_webui_server.client_ids.add("client-" + env_lollms[:12])
    text_host, image_host = lollms_server.url, lollms_webui_server.url
    replay.record(tape_file)
    text = get_binding("lollms", host=text_host, model="ollama/test-model", api_key=LOLLMS_KEY)
    assert text.generate("Keep my secrets", temperature=0).text == "Echo: Keep my secrets"
    pictures = get_image_binding("lollms", host=image_host, client_id="client-" + env_lollms[:12])
    settings = pictures.get_settings()
    replay.stop()
    assert lollms_server.requests[-1].headers.get("authorization") == f"Bearer {LOLLMS_KEY}"
    assert any(r.json and "client_id" in r.json for r in lollms_webui_server.requests)

    stored = tape_file.read_text(encoding="utf-8")
    for secret in (LOLLMS_KEY, env_lollms, env_lollms[:12], env_openai):
        assert secret not in stored
    for word in ("authorization", "bearer", "client_id"):
        assert word not in stored.lower()
    assert "Keep my secrets" in stored  # the prompt is there, readable

    lollms_server.stop()
    lollms_webui_server.stop()
    replay.replay(tape_file)
    again = get_binding("lollms", host=text_host, model="ollama/test-model", api_key="another-key-123")
    assert again.generate("Keep my secrets", temperature=0).text == "Echo: Keep my secrets"
    # Matched without the client_id: any session id (or another student's) finds the answer.
    other = get_image_binding("lollms", host=image_host, client_id="someone-else")
    assert other.get_settings() == settings


def test_pictures_replay_byte_for_byte(comfyui_server: Any, tape_file: Path) -> None:
    host = comfyui_server.url
    replay.record(tape_file)
    live = get_image_binding("comfyui", host=host).generate_image("a red fox", width=64, height=64, seed=7)
    replay.stop()
    comfyui_server.stop()
    assert isinstance(live, bytes) and live[:4] == b"\x89PNG"
    assert "client_id" not in tape_file.read_text(encoding="utf-8")

    replay.replay(tape_file, speed=0)
    again = get_image_binding("comfyui", host=host).generate_image("a red fox", width=64, height=64, seed=7)
    assert again == live


def test_refused_connections_are_recorded_too(openai_server: Any, tape_file: Path) -> None:
    host = openai_server.url
    openai_server.stop()
    replay.record(tape_file)
    with pytest.raises(ServerUnreachableError, match="cannot reach openai"):
        get_binding("openai", host=host, model="m", max_retries=0).generate("Anyone?").text  # noqa: B018
    replay.stop()
    assert lines(tape_file)[1]["error"] == "ConnectError"

    replay.replay(tape_file)
    with pytest.raises(ServerUnreachableError, match="cannot reach openai") as info:
        get_binding("openai", host=host, model="m", max_retries=0).generate("Anyone?").text  # noqa: B018
    assert not isinstance(info.value, NotRecordedError)


def test_a_request_asked_twice_replays_both_answers_in_order(
    openai_server: Any, tape_file: Path
) -> None:
    host = openai_server.url
    replay.record(tape_file)
    binding = get_binding("openai", host=host, model="test-model")
    binding.generate("Twice").text  # noqa: B018
    openai_server.reply = lambda prompt: "Second answer"  # the server changed its mind
    binding.generate("Twice").text  # noqa: B018
    replay.stop()
    openai_server.stop()

    replay.replay(tape_file, speed=0)
    binding = get_binding("openai", host=host, model="test-model")
    first, second, third = (binding.generate("Twice").text for _ in range(3))
    assert first == "Echo: Twice"
    assert second == third == "Second answer"


def test_unusable_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"^no replay file at .*missing\.jsonl$"):
        replay.replay(tmp_path / "missing.jsonl")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"lollms_magics_replay": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken.jsonl, line 2: not JSON; is it a replay file\?$"):
        replay.replay(broken)
