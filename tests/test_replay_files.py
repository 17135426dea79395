"""The replay files committed beside the notebooks: present, readable, small, and free of secrets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lollms_magics.replay.cassette import Cassette

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
REPLAY_LINE = re.compile(r"^%lollms replay (\S+\.jsonl)", re.MULTILINE)


def _replayed() -> list[tuple[Path, Path]]:
    found = []
    for notebook in sorted(NOTEBOOKS.rglob("*.ipynb")):
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        for cell in cells:
            for name in REPLAY_LINE.findall("".join(cell["source"])):
                found.append((notebook, notebook.parent / name))
    return found


def test_some_notebooks_replay() -> None:
    assert len(_replayed()) >= 4


@pytest.mark.parametrize(("notebook", "replay_file"), _replayed(), ids=lambda p: p.name)
def test_each_replay_file_is_there_small_and_clean(notebook: Path, replay_file: Path) -> None:
    assert replay_file.is_file(), f"{notebook.name} replays {replay_file.name}, which is missing"
    assert len(Cassette.load(replay_file)) > 0
    assert replay_file.stat().st_size < 200_000
    text = replay_file.read_text(encoding="utf-8").lower()
    for word in ("authorization", "bearer ", "client_id", "api_key"):
        assert word not in text, f"{replay_file.name} holds {word!r}"
    assert not re.search(r"\bsk-[a-z0-9_-]{16,}", text), f"{replay_file.name} holds an OpenAI-style key"


def test_answers_recorded_from_many_threads_are_all_in_the_file(tmp_path: Path) -> None:
    # Each thread saves the file after adding its answer; an older snapshot written
    # last would drop the answers added meanwhile (seen with --each --concurrency 3).
    import threading

    from lollms_magics.replay.cassette import Recorder

    path = tmp_path / "many.replay.jsonl"
    recorder = Recorder(Cassette(path))
    start = threading.Barrier(8)

    def record(worker: int) -> None:
        start.wait()
        for n in range(25):
            recorder.add({"key": {"worker": worker, "n": n}, "text": f"{worker}-{n}"})

    threads = [threading.Thread(target=record, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(Cassette.load(path)) == 200
