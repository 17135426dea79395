"""``%%lollms --each ITEMS`` in a real InteractiveShell, against loopback servers over real HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from lollms_magics import replay
from lollms_magics.core.mapping import MapResult, map_memory
from lollms_magics.ipython.each import Out, parse_out
from lollms_magics.ipython.failure import CellFailure
from tests.shell import CHOICE, magics_shell
from tests.test_map import ItemServer, interrupt_when, serve

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    replay.stop()
    map_memory().clear()
    unset = (*CHOICE, "OPENAI_BASE_URL", replay.ENV_REPLAY, replay.ENV_RECORD)
    with magics_shell(monkeypatch, unset=unset) as shell:
        yield shell
        replay.stop()
        map_memory().clear()


@pytest.fixture
def server() -> Iterator[ItemServer]:
    srv = serve()
    yield srv
    srv.stop()


def target(server: ItemServer) -> str:
    return f"-b openai --host {server.url} -m test-model"


def cell(ip: InteractiveShell, line: str, body: str) -> tuple[Any, Any]:
    """Run a cell; its value and what it printed."""
    with capture_output() as cap:
        value = ip.run_cell_magic("lollms", line, body)
    return value, cap


def books() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "title": ["Dune", "Emma", "Ulysses"],
            "blurb": ["sand and spice", "a matchmaker", "one day in Dublin"],
        },
        index=[101, 205, 333],
    )


def test_the_out_column_is_written_into_the_frame_lined_up_with_its_index(
    ip: InteractiveShell, server: ItemServer
) -> None:
    ip.user_ns["df"] = df = books()
    line = f'--each df -o df["label"] --concurrency 3 {target(server)}'
    value, cap = cell(ip, line, "Genre of {item.title}?\n")
    assert value is None  # the results went to -o
    assert list(df.columns) == ["title", "blurb", "label"] and list(df.index) == [101, 205, 333]
    assert df.loc[205, "label"] == "label:Genre of Emma?"
    assert "error" not in df.columns  # nothing failed
    bars = [o for o in cap.outputs if "application/vnd.jupyter.widget-view+json" in o.data]
    assert len(bars) == 1  # the progress bar beside its line


def test_a_terminal_gets_a_text_bar_with_done_failed_and_the_rate(
    ip: InteractiveShell, server: ItemServer
) -> None:
    # The instance whose magics run (another test may have left an older one in ip.configurables).
    magics = ip.magics_manager.registry["LollmsMagics"]
    magics.stream_to = "stdout"
    ip.user_ns["items"] = ["a", "BAD", "b"]
    with capture_output() as cap, pytest.raises(CellFailure):
        ip.run_cell_magic("lollms", f"--each items -o out {target(server)}", "Say {item}\n")
    # The bar redraws itself with \r; the failed item's own line may come after its last redraw.
    last = [part for part in re.split(r"[\r\n]", cap.stderr) if part.startswith("[")][-1]
    assert last.startswith("[########################] 2/3 done  1 failed")
    assert "items/s" in last and "in " in last


def test_several_columns_come_from_the_schemas_fields(ip: InteractiveShell, server: ItemServer) -> None:
    server.json_reply = lambda prompt, schema: json.dumps(
        {"genre": "novel", "words": len(prompt.split()), "mood": "calm"}
    )
    ip.user_ns["df"] = df = books()
    cell(ip, f"--each df -o df[[genre,words]] --schema 'genre: str, words: int, mood: str' {target(server)}",
         "Describe {item.blurb}\n")
    assert list(df.columns) == ["title", "blurb", "genre", "words"]
    assert df.loc[333, "words"] == 5  # "Describe one day in Dublin"
    assert df.loc[101, "genre"] == "novel"


def test_out_var_holds_the_results_shaped_like_the_items(ip: InteractiveShell, server: ItemServer) -> None:
    ip.user_ns["cities"] = ["Oslo", "Lima"]
    cell(ip, f"--each cities -o answers {target(server)}", "Country of {item}?\n")
    assert ip.user_ns["answers"] == ["label:Country of Oslo?", "label:Country of Lima?"]
    ip.user_ns["df"] = books()
    cell(ip, f"--each df -o table {target(server)}", "About {item.title}\n")
    table = ip.user_ns["table"]
    assert list(table.index) == [101, 205, 333] and list(table.columns) == ["result", "error"]


def test_a_glob_of_files_gives_each_files_text_keyed_by_its_path(
    ip: InteractiveShell, server: ItemServer, tmp_path: Path
) -> None:
    (tmp_path / "one.txt").write_text("the first ticket", encoding="utf-8")
    (tmp_path / "two.txt").write_text("the second ticket", encoding="utf-8")
    cell(ip, f"--each {tmp_path}/*.txt -o tickets {target(server)}", "Triage: {item}\n")
    assert ip.user_ns["tickets"] == {
        str(tmp_path / "one.txt"): "label:Triage: the first ticket",
        str(tmp_path / "two.txt"): "label:Triage: the second ticket",
    }


def test_without_out_the_cells_value_is_the_map_result(ip: InteractiveShell, server: ItemServer) -> None:
    ip.user_ns["words"] = {"a": "sun", "b": "moon"}
    value, _ = cell(ip, f"--each words {target(server)}", "Rhyme with {item}\n")
    assert isinstance(value, MapResult)
    assert value.output() == {"a": "label:Rhyme with sun", "b": "label:Rhyme with moon"}
    assert "2 of 2 done" in value.summary()


def test_failed_rows_fill_the_error_column_and_fail_the_cell_after_storing(
    ip: InteractiveShell, server: ItemServer
) -> None:
    ip.user_ns["df"] = df = pd.DataFrame({"text": ["good", "BAD row", "fine"]}, index=["a", "b", "c"])
    with capture_output() as cap, pytest.raises(CellFailure, match=r"1 of 3 items failed \(item 'b'"):
        ip.run_cell_magic("lollms", f'--each df -o df["label"] {target(server)}', "Read {item.text}\n")
    assert df.loc["a", "label"] == "label:Read good" and pd.isna(df.loc["b", "label"])
    assert "cannot read Read BAD row" in df.loc["b", "error"] and pd.isna(df.loc["c", "error"])
    assert "item 'b' failed" in cap.stderr
    # Run again once the row is fixed: only it is sent, and the error column is cleared.
    server.reset()
    df.loc["b", "text"] = "better row"
    cell(ip, f'--each df -o df["label"] {target(server)}', "Read {item.text}\n")
    assert server.prompts() == ["Read better row"]
    assert df.loc["b", "label"] == "label:Read better row" and df["error"].isna().all()


def test_fail_fast_ends_the_cell_at_the_first_failure(ip: InteractiveShell, server: ItemServer) -> None:
    ip.user_ns["items"] = ["one", "BAD", "two", "three"]
    with capture_output(), pytest.raises(CellFailure, match=r"cannot read Say BAD\); 1 of 4 done"):
        ip.run_cell_magic("lollms", f"--each items -o out --fail-fast {target(server)}", "Say {item}\n")
    assert server.prompts() == ["Say one", "Say BAD"]
    assert ip.user_ns["out"] == ["label:Say one", None, None, None]


def test_ctrl_c_keeps_what_was_done_in_out_and_is_raised_again(
    ip: InteractiveShell, server: ItemServer
) -> None:
    ip.user_ns["items"] = ["a", "b", "SLOW", "c"]
    pressed: list[float] = []
    interrupt_when(lambda: any("SLOW" in p for p in server.prompts()), pressed)
    with capture_output() as cap, pytest.raises(KeyboardInterrupt):
        ip.run_cell_magic("lollms", f"--each items -o out {target(server)}", "Say {item}\n")
    assert ip.user_ns["out"] == ["label:Say a", "label:Say b", None, None]
    assert "interrupted; 2 of 4 done; the results are in out" in cap.stderr


def test_two_hosts_through_the_magic(ip: InteractiveShell, server: ItemServer) -> None:
    other = serve()
    try:
        server.delay = other.delay = 0.1
        ip.user_ns["nums"] = list(range(10))
        hosts = f"--hosts {server.url},{other.url} --concurrency 2"
        cell(ip, f"--each nums -o out -b openai -m test-model {hosts}", "Number {item}\n")
        assert ip.user_ns["out"] == [f"label:Number {i}" for i in range(10)]
        assert server.prompts() and other.prompts()
    finally:
        other.stop()


def test_a_recorded_mapped_cell_replays_without_its_server(
    ip: InteractiveShell, server: ItemServer, tmp_path: Path
) -> None:
    path = tmp_path / "each.replay.jsonl"
    ip.user_ns["df"] = books()
    line = f'--each df -o df["label"] --concurrency 3 {target(server)}'
    with capture_output():
        ip.run_line_magic("lollms", f"record {path}")
    cell(ip, line, "Genre of {item.title}?\n")
    live = list(ip.user_ns["df"]["label"])
    with capture_output():
        ip.run_line_magic("lollms", "record off")
    server.stop()
    map_memory().clear()  # the answers must come from the file, not from the kernel's memory

    with capture_output():
        ip.run_line_magic("lollms", f"replay {path}")
    ip.user_ns["df"] = replayed = books()
    cell(ip, line, "Genre of {item.title}?\n")
    assert list(replayed["label"]) == live == [f"label:Genre of {t}?" for t in ("Dune", "Emma", "Ulysses")]


def test_a_key_in_an_item_is_refused_before_anything_is_sent(
    ip: InteractiveShell, server: ItemServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_TOKEN", "tok-crm-99887766")
    ip.user_ns["notes"] = ["call back", "token tok-crm-99887766 for the CRM"]
    with pytest.raises(UsageError, match=r"\{item\} of item 1 holds an API key") as caught:
        ip.run_cell_magic("lollms", f"--each notes -o summaries {target(server)}", "Summarize {item}\n")
    assert "tok-crm" not in str(caught.value)
    assert server.requests == [] and "summaries" not in ip.user_ns


def test_mistakes_in_the_line_are_one_line_usage_errors(
    ip: InteractiveShell, server: ItemServer, tmp_path: Path
) -> None:
    ip.user_ns["df"] = books()
    ip.user_ns["items"] = ["a"]
    mistakes = {
        f"--concurrency 4 {target(server)}": "go with --each",
        f"--each nothing {target(server)}": "no variable of that name",
        f"--each {tmp_path}/*.txt {target(server)}": "no file matches",
        f'--each items -o missing["x"] {target(server)}': "no variable missing",
        f"--each df -o df[[a,b]] {target(server)}": "need --schema",
        f"--each df -o df[[a,b]] --schema 'a: str' {target(server)}": "'b' is no field of the schema",
        f"--each items -o 2x {target(server)}": "-o needs a variable name",
        f"--each items --concurrency 0 {target(server)}": "at least 1",
    }
    for line, message in mistakes.items():
        with pytest.raises(UsageError, match=message):
            ip.run_cell_magic("lollms", line, "Do {item}\n")
    assert server.requests == []


def test_the_out_forms_are_read_with_or_without_quotes() -> None:
    assert parse_out("df") == Out("df")
    assert parse_out('df["label"]') == Out("df", ("label",))
    assert parse_out("df[label]") == Out("df", ("label",))
    assert parse_out('df[["name", "year"]]') == Out("df", ("name", "year"), True)
    assert parse_out("df[[name,year]]") == Out("df", ("name", "year"), True)
