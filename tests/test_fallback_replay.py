"""A prompt the replay file lacks: ``--fallback error|live|embedded``.

``embedded`` has the real embedded model (SmolLM2) answer it, marked as such
in the answer's notes and metadata, while what the file holds still replays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from lollms_magics import replay
from lollms_magics.core.session import Session
from lollms_magics.errors import NotRecordedError
from lollms_magics.ipython.magics import LollmsMagics
from tests.conftest import require_embedded_model


@pytest.fixture(autouse=True)
def _no_tape(monkeypatch: pytest.MonkeyPatch):
    for name in ("LOLLMS_MAGICS_BINDING", "LOLLMS_MAGICS_MODEL", "LOLLMS_MAGICS_HOST", "OPENAI_API_KEY",
                 "OPENAI_BASE_URL", replay.ENV_REPLAY, replay.ENV_RECORD, replay.ENV_FALLBACK):
        monkeypatch.delenv(name, raising=False)
    replay.stop()
    yield
    replay.stop()


def recorded(tmp_path: Path, server: Any) -> Path:
    """A tape holding one answer of the loopback server: 'Name a fruit.'."""
    path = tmp_path / "class.replay.jsonl"
    replay.record(path)
    try:
        s = Session("openai", model="test-model", host=server.url + "/v1")
        assert s.ask("Name a fruit.", n_predict=8).text == "Echo: Name a fruit."
        s.close()
    finally:
        replay.stop()
    return path


def test_the_modes_are_read_from_words_and_old_flags() -> None:
    assert [replay.miss_mode(v) for v in (True, False, None, "live", "EMBEDDED", "error", "1", "")] == [
        "live", "error", "error", "live", "embedded", "error", "live", "error",
    ]
    with pytest.raises(ValueError, match="error, live or embedded"):
        replay.miss_mode("local")


def test_error_mode_fails_a_missing_prompt_with_one_line(tmp_path: Path, openai_server: Any) -> None:
    path = recorded(tmp_path, openai_server)
    replay.replay(path, fallback="error", speed=0)
    assert replay.on_miss() == "error"
    s = Session("openai", model="test-model", host=openai_server.url + "/v1", fallbacks=None)
    with pytest.raises(NotRecordedError, match=r"has no answer for the prompt 'Name a vegetable\.'"):
        _ = s.ask("Name a vegetable.", n_predict=8).text


@pytest.mark.model
def test_embedded_answers_what_the_file_lacks_and_says_so(tmp_path: Path, openai_server: Any) -> None:
    require_embedded_model()
    path = recorded(tmp_path, openai_server)
    url = openai_server.url
    openai_server.stop()  # a student's machine: no server at all
    replay.replay(path, fallback="embedded", speed=0)
    assert replay.on_miss() == "embedded"
    s = Session("openai", model="test-model", host=url + "/v1")
    kept = s.ask("Name a fruit.", n_predict=8)
    assert kept.text == "Echo: Name a fruit." and kept.fallback is None and kept.binding == "openai"
    missing = s.ask("Name a vegetable.", n_predict=8, temperature=0)
    assert missing.text.strip() and missing.done
    assert missing.binding == "llamacpp"
    meta = missing.metadata()
    assert meta["fallback"]["replay_miss"] is True
    assert meta["fallback"]["failed"] == [{"backend": "openai:test-model", "error": "not in the replay file"}]
    assert "not in the replay file: answered live by the embedded model" in missing.notes
    s.close()


@pytest.mark.model
def test_the_magic_takes_fallback_embedded_and_marks_the_cell(tmp_path: Path, openai_server: Any) -> None:
    require_embedded_model()
    path = recorded(tmp_path, openai_server)
    url = openai_server.url
    openai_server.stop()
    shell = InteractiveShell.instance()
    if "lollms_magics" not in shell.extension_manager.loaded:
        shell.run_line_magic("load_ext", "lollms_magics")
    magics = LollmsMagics(shell=shell, session=Session(), stream_to="display")
    shell.register_magics(magics)
    try:
        with capture_output() as cap:
            shell.run_line_magic("lollms", f"replay {path} --fallback embedded --speed 0")
        assert "the embedded model for the rest" in cap.stdout
        with capture_output() as cap:
            line = f"-b openai:test-model --host {url}/v1 -n 8 -t 0"
            shell.run_cell_magic("lollms", line, "Name a vegetable.")
        final = cap.outputs[-1]
        info = final.metadata["lollms_magics"]
        assert info["binding"] == "llamacpp" and info["fallback"]["replay_miss"] is True
        assert "answered live by the embedded model" in final.data["text/markdown"]
        status = magics.session.status(check=False)
        assert ("replay", "a prompt the file lacks is answered by the embedded model") in status.rows
        with pytest.raises(UsageError, match="invalid choice"):
            shell.run_line_magic("lollms", f"replay {path} --fallback local")
    finally:
        magics.session.close()
        shell.configurables.remove(magics)


def test_the_environment_chooses_the_mode(
    tmp_path: Path, openai_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = recorded(tmp_path, openai_server)
    monkeypatch.setenv(replay.ENV_REPLAY, str(path))
    monkeypatch.setenv(replay.ENV_FALLBACK, "embedded")
    replay.from_environment()
    assert replay.on_miss() == "embedded"
    monkeypatch.setenv(replay.ENV_FALLBACK, "1")  # what older notebooks set: live
    replay.from_environment()
    assert replay.on_miss() == "live"
    monkeypatch.setenv(replay.ENV_FALLBACK, "sometimes")
    with pytest.raises(ValueError, match=replay.ENV_FALLBACK):
        replay.from_environment()
