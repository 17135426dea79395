"""Each replayed notebook shows, cell by cell, what its saved outputs show (times aside).

The notebook runs strictly (no live fallback, no pacing): an answer its
replay file lacks fails here, and so does an answer, a table or a message
that changed. Save the outputs again with ``python notebooks/outputs.py``
after recording a replay file or changing what a command shows.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
_spec = importlib.util.spec_from_file_location("notebook_outputs", NOTEBOOKS / "outputs.py")
assert _spec is not None and _spec.loader is not None
outputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(outputs)


def test_every_replayed_notebook_is_listed_and_has_its_file() -> None:
    replayed = {str(p.relative_to(NOTEBOOKS)) for p in NOTEBOOKS.rglob("*.replay.jsonl")}
    assert {name.replace(".ipynb", ".replay.jsonl") for name in outputs.REPLAYED} == replayed


def test_the_sanitizers_mask_times_and_speeds_only() -> None:
    cell = {"outputs": [{"output_type": "display_data", "data": {
        "text/markdown": "Paris has 2,100,000 people.\n<sub>m · 27 tokens · 1.1 tok/s · 30.2 s</sub>"}},
        {"output_type": "stream", "name": "stdout", "text": "12 items in 0:04, "},
        {"output_type": "stream", "name": "stdout", "text": "3.5 items/s"}]}
    assert outputs.shown(cell) == [
        "[display_data]  Paris has 2,100,000 people.\n<sub>m · 27 tokens · <time> · <time></sub>",
        "[stdout]12 items in <clock>, <time>",
    ]


def test_runs_of_one_stream_are_joined_and_streams_keep_their_order() -> None:
    cell = nbformat.v4.new_code_cell("print(1, 2)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1"),
                    nbformat.v4.new_output("stream", name="stdout", text=" 2\n"),
                    nbformat.v4.new_output("stream", name="stderr", text="warning\n"),
                    nbformat.v4.new_output("stream", name="stdout", text="3\n")]
    nb = nbformat.v4.new_notebook(cells=[cell])
    assert [(o.name, o.text) for o in outputs.merge_streams(nb).cells[0].outputs] == [
        ("stdout", "1 2\n"), ("stderr", "warning\n"), ("stdout", "3\n")]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", outputs.REPLAYED)
def test_a_replayed_notebook_shows_what_was_saved(name: str) -> None:
    path = NOTEBOOKS / name
    saved = nbformat.read(path, as_version=4)
    ran = outputs.execute(path)  # a cell that fails (an answer not in the file) raises here
    checked = 0
    for index, (before, now) in enumerate(zip(saved.cells, ran.cells, strict=True)):
        if before.cell_type != "code":
            continue
        assert before.get("outputs") or not now.get("outputs"), f"{name}: cell {index} has no saved outputs"
        assert outputs.shown(now) == outputs.shown(before), f"{name}: cell {index} shows something else"
        checked += bool(before.get("outputs"))
    assert checked >= 3  # the saved notebook holds outputs to compare
