"""The real embedded model recorded once, then replayed without being loaded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lollms_magics import replay
from lollms_magics.bindings import llamacpp
from tests.conftest import require_embedded_model

pytestmark = pytest.mark.model


@pytest.fixture(autouse=True)
def _local_extra() -> None:
    require_embedded_model()


def test_smollm2_records_and_replays_without_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "smollm2.jsonl"
    replay.record(path)
    try:
        binding = llamacpp.LlamaCppBinding()
        start = time.perf_counter()
        live = binding.generate("Name a fruit.", n_predict=8, temperature=0, seed=1)
        live_pieces = [(time.perf_counter() - start, piece) for piece in live]
    finally:
        replay.stop()
    assert live.completion_tokens and live.text

    def no_model(*args: object) -> None:
        raise AssertionError("the model was loaded during a replay")

    monkeypatch.setattr(llamacpp, "_entry", no_model)
    replay.replay(path)
    try:
        start = time.perf_counter()
        again = llamacpp.LlamaCppBinding().generate("Name a fruit.", n_predict=8, temperature=0, seed=1)
        pieces = [(time.perf_counter() - start, piece) for piece in again]
    finally:
        replay.stop()
    assert [p for _, p in pieces] == [p for _, p in live_pieces]
    assert (again.finish_reason, again.completion_tokens, again.prompt_tokens) == (
        live.finish_reason, live.completion_tokens, live.prompt_tokens,
    )
    assert abs(pieces[-1][0] - live_pieces[-1][0]) < 0.3  # the recorded pace, model load included
