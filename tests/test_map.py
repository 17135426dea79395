"""``Session.map``: one prompt over many items, against loopback servers over real HTTP.

What the servers saw is the evidence: how many requests, how many at once,
which host, what each held. A Ctrl-C is ``_thread.interrupt_main()`` from a
watcher thread, so the main thread gets a real KeyboardInterrupt while the
workers run.
"""

from __future__ import annotations

import _thread
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from lollms_magics import Session, replay
from lollms_magics.core.mapping import MapProgress, map_memory
from lollms_magics.errors import InvalidOptionError, PromptError
from tests.servers import OpenAIServer
from tests.servers.base import Exchange, Plan
from tests.servers.openai_compat import last_user_text

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    map_memory().clear()
    yield
    map_memory().clear()


class ItemServer(OpenAIServer):
    """Answers ``label:<prompt>``; a prompt holding ``BAD`` gets a 400, one holding ``SLOW`` stalls.

    ``delay``: seconds every answer takes (the server serves any number at once).
    """

    def __init__(self) -> None:
        super().__init__()
        self.stall_timeout = 30.0
        self.reply = lambda prompt: f"label:{prompt}"
        self.delay = 0.0
        self.stall_slow = True
        self.resets = 0  # connections to cut without an answer, for prompts holding RESET
        self.listen_queue = 128  # forty workers connect at once

    def chat(self, ex: Exchange) -> None:
        prompt = last_user_text((ex.json or {}).get("messages") or [])
        if "RESET" in prompt and self.resets:
            self.resets -= 1
            ex.abort()  # the connection is cut before any answer, as a crashing worker would
            return
        if "BAD" in prompt:
            self.error(ex, 400, f"cannot read {prompt}", "invalid_request_error")
            return
        super().chat(ex)

    def plan(self, model: str, prompt_text: str, limit: int | None) -> Plan:
        if "SLOW" in prompt_text and self.stall_slow:
            self._stopping.wait(30.0)  # far longer than any bound below; the server's stop ends it
        elif self.delay:
            self._stopping.wait(self.delay)
        return super().plan(model, prompt_text, limit)

    def prompts(self) -> list[str]:
        return [last_user_text(r.json["messages"]) for r in self.requests_to("/v1/chat/completions")]


def serve(cls: type[ItemServer] = ItemServer) -> ItemServer:
    server = cls()
    server.start()
    return server


@pytest.fixture
def server() -> Iterator[ItemServer]:
    srv = serve()
    yield srv
    srv.stop()


@pytest.fixture
def session(server: ItemServer) -> Iterator[Session]:
    s = Session("openai", model="test-model", host=server.url)
    yield s
    s.close()


def map_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lollms-map-")]


def interrupt_when(condition: Callable[[], bool], pressed: list[float]) -> threading.Thread:
    """Press Ctrl-C (in the main thread) as soon as ``condition()`` holds; ``pressed`` gets the time."""

    def watch() -> None:
        deadline = time.monotonic() + 30
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.01)
        pressed.append(time.monotonic())
        _thread.interrupt_main()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


# -- items in, results out, in order --------------------------------------------------------


def test_a_list_gives_a_list_in_the_items_order(session: Session, server: ItemServer) -> None:
    server.delay = 0.05  # answers finish out of order at concurrency 4
    words = [f"w{i}" for i in range(12)]
    result = session.map("Word: {item}", words, concurrency=4)
    assert result.output() == [f"label:Word: w{i}" for i in range(12)]
    assert result.complete and result.done == 12 and result.failed == 0 and result.calls == 12
    assert sorted(server.prompts()) == sorted(f"Word: w{i}" for i in range(12))


def test_a_dataframe_gives_a_frame_with_its_index_and_rows_fill_fields(
    session: Session, server: ItemServer
) -> None:
    df = pd.DataFrame(
        {"name": ["Ada", "Alan", "Grace"], "year": [1815, 1912, 1906]}, index=["x", "y", "z"]
    )
    result = session.map('{item.name} was born in {item["year"]}.', df, concurrency=2)
    out = result.output()
    assert list(out.index) == ["x", "y", "z"]
    assert out.loc["y", "result"] == "label:Alan was born in 1912."
    assert out["error"].isna().all()
    assert result.labels == ["x", "y", "z"]


def test_a_series_and_a_dict_keep_their_index_and_keys(session: Session) -> None:
    series = pd.Series(["red", "green"], index=[10, 20])
    out = session.map("Colour {item}", series).output()
    assert isinstance(out, pd.Series) and list(out.index) == [10, 20]
    assert out[20] == "label:Colour green"
    assert session.map("Fruit {item}", {"a": "apple", "b": "pear"}).output() == {
        "a": "label:Fruit apple", "b": "label:Fruit pear",
    }


def test_dicts_and_iterables_and_the_users_variables(session: Session) -> None:
    people = [{"name": "Ada", "lang": "en"}, {"name": "Jean", "lang": "fr"}]
    out = session.map("{item.name} speaks {item['lang']} to {audience}", iter(people),
                      namespace={"audience": "pupils"}).output()
    assert out == ["label:Ada speaks en to pupils", "label:Jean speaks fr to pupils"]


def test_a_glob_maps_each_files_text_keyed_by_its_path(session: Session, tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("second file", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first file", encoding="utf-8")
    (tmp_path / "c.md").write_text("not matched", encoding="utf-8")
    out = session.map("{item.name}: {item}", str(tmp_path / "*.txt")).output()
    assert out == {
        str(tmp_path / "a.txt"): "label:a.txt: first file",
        str(tmp_path / "b.txt"): "label:b.txt: second file",
    }


def test_each_item_is_sent_alone_and_nothing_joins_the_conversation(
    session: Session, server: ItemServer
) -> None:
    assert session.ask("An earlier question").text  # the conversation has one exchange
    session.map("Q {item}", ["a", "b", "c"], system="Be brief about {item}.", concurrency=3)
    mapped = [r.json for r in server.requests_to("/v1/chat/completions")][1:]
    assert len(mapped) == 3
    for body in mapped:
        roles = [m["role"] for m in body["messages"]]
        assert roles == ["system", "user"]  # no earlier exchange sent
        item = body["messages"][1]["content"][2:]
        assert body["messages"][0]["content"] == f"Be brief about {item}."
    assert len(session.history()) == 1  # none kept


# -- concurrency and hosts ------------------------------------------------------------------


def test_concurrency_is_really_in_flight_at_the_server(session: Session, server: ItemServer) -> None:
    server.delay = 0.3
    session.map("Item {item}", list(range(12)), concurrency=4)
    assert server.max_in_flight == 4  # four at once, never more


@pytest.mark.parametrize("recording", [False, True])
def test_a_second_map_reuses_the_connections_of_the_first(
    server: ItemServer, recording: bool, tmp_path: Path
) -> None:
    # httpx keeps 20 idle connections by default and closes the others; its pool can then
    # close one it has just handed to a waiting request (encode/httpcore#1110), which fails
    # with "Bad file descriptor" or hangs until the read timeout. Kept whole, the pool never
    # closes a connection to make room, and 40 workers reuse the same 40 connections
    # (a recording wraps the transport: the same holds under it).
    if recording:
        replay.record(tmp_path / "run.replay.jsonl")
    try:
        s = Session("openai", model="test-model", host=server.url)
        server.delay = 0.05
        first = s.map("First {item}", list(range(80)), concurrency=40)
        second = s.map("Second {item}", list(range(80)), concurrency=40)
        s.close()
    finally:
        replay.stop()
    assert first.complete and second.complete
    assert len(server.requests_to("/v1/chat/completions")) == 160
    peers = {r.peer for r in server.requests_to("/v1/chat/completions")}
    assert len(peers) <= 40  # each a connection opened; more means some were closed and opened again


def test_two_hosts_share_the_items(server: ItemServer) -> None:
    other = serve()
    try:
        server.delay = other.delay = 0.1
        s = Session("openai", model="test-model")
        result = s.map("Item {item}", list(range(20)), hosts=[server.url, other.url], concurrency=2)
        s.close()
        assert result.complete
        first, second = len(server.prompts()), len(other.prompts())
        assert first + second == 20 and first >= 4 and second >= 4
        assert server.max_in_flight <= 2 and other.max_in_flight <= 2
        assert sorted(server.prompts() + other.prompts()) == sorted(f"Item {i}" for i in range(20))
    finally:
        other.stop()


def test_a_host_that_is_down_leaves_its_items_to_the_other(server: ItemServer) -> None:
    gone = serve()
    url = gone.url
    gone.stop()
    s = Session("openai", model="test-model")
    s.binding_config["max_retries"] = 0  # the refused connection is not retried on the same host
    result = s.map("Item {item}", list(range(6)), hosts=[url, server.url], concurrency=2)
    s.close()
    assert result.complete and result.failed == 0
    assert sorted(server.prompts()) == sorted(f"Item {i}" for i in range(6))


# -- failures ----------------------------------------------------------------------------------


def test_a_connection_cut_once_does_not_end_the_run(session: Session, server: ItemServer) -> None:
    server.resets = 1
    items = ["a", "b", "RESET", "c", "d"]
    result = session.map("Item {item}", items, concurrency=2)
    assert result.complete and result.error is None  # the one host was not given up for one cut
    assert result.results[2] == "label:Item RESET"
    assert server.prompts().count("Item RESET") == 2


def test_a_failed_item_is_kept_with_its_error_and_the_others_go_on(
    session: Session, server: ItemServer
) -> None:
    items = ["ok1", "BAD1", "ok2", "BAD2", "ok3"]
    result = session.map("Item {item}", items, concurrency=2)
    assert result.output() == ["label:Item ok1", None, "label:Item ok2", None, "label:Item ok3"]
    assert result.failed == 2 and result.done == 3 and not result.complete
    assert set(result.errors) == {1, 3}
    assert "cannot read Item BAD1" in result.errors[1]
    assert result.error is None  # the run itself went to the end
    assert len(server.prompts()) == 5  # a 400 blames the request: not sent again


def test_failures_go_into_the_error_column_of_a_frame(session: Session) -> None:
    df = pd.DataFrame({"text": ["fine", "BAD", "good"]}, index=[7, 8, 9])
    out = session.map("T {item.text}", df).output()
    assert out.loc[7, "result"] == "label:T fine" and pd.isna(out.loc[8, "result"])  # pandas' missing value
    assert "cannot read T BAD" in out.loc[8, "error"] and pd.isna(out.loc[9, "error"])


def test_fail_fast_stops_at_the_first_failure(session: Session, server: ItemServer) -> None:
    items = ["a", "b", "BAD", "c", "d", "e"]
    result = session.map("Item {item}", items, fail_fast=True)  # one at a time: the order is known
    assert server.prompts() == ["Item a", "Item b", "Item BAD"]  # nothing after it was sent
    assert result.results[:2] == ["label:Item a", "label:Item b"] and result.results[3:] == [None] * 3
    assert result.error is not None and "cannot read Item BAD" in result.error
    assert list(result.errors) == [2]


# -- resume and stop -----------------------------------------------------------------------------


def test_the_same_map_again_sends_only_what_failed(session: Session, server: ItemServer) -> None:
    items = ["a", "BAD", "b"]
    first = session.map("Item {item}", items)
    assert first.failed == 1 and len(server.prompts()) == 3
    server.reset()
    items[1] = "fixed"  # a new prompt: the failed item is sent; the others come from the first run
    second = session.map("Item {item}", items)
    assert server.prompts() == ["Item fixed"]
    assert second.output() == ["label:Item a", "label:Item fixed", "label:Item b"]
    assert second.cached == 2 and second.calls == 1
    third = session.map("Item {item}", items, temperature=0.5)  # other options: other answers
    assert third.cached == 0 and len(server.prompts()) == 4


def test_ctrl_c_keeps_what_is_done_returns_at_once_and_a_rerun_sends_the_rest(
    session: Session, server: ItemServer
) -> None:
    items = [f"fast{i}" for i in range(12)] + [f"SLOW{i}" for i in range(4)] + [f"late{i}" for i in range(4)]
    pressed: list[float] = []
    # The four workers are all held by the stalled answers: press Ctrl-C then.
    interrupt_when(lambda: sum("SLOW" in p for p in server.prompts()) == 4, pressed)
    first = session.map("Item {item}", items, concurrency=4)
    returned = time.monotonic()
    assert first.stopped and first.error == "interrupted"
    assert returned - pressed[0] < 2.0  # the stalled answers would hold it 30 s
    assert first.done == 12 and first.results[:12] == [f"label:Item fast{i}" for i in range(12)]
    assert first.results[12:] == [None] * 8 and first.failed == 0
    deadline = time.monotonic() + 2.0
    while map_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not map_threads()  # no worker left waiting on a stalled answer

    server.stall_slow = False
    server.reset()
    second = session.map("Item {item}", items, concurrency=4)
    assert second.complete and second.cached == 12
    assert sorted(server.prompts()) == sorted(f"Item {i}" for i in items[12:])  # only the 8 missing


def test_progress_counts_done_failed_and_the_rate(session: Session, server: ItemServer) -> None:
    server.delay = 0.02
    events: list[MapProgress] = []
    session.map("Item {item}", ["a", "BAD", "b", "c"], progress=events.append, concurrency=2)
    assert events[0].phase == "start" and events[0].done == 0
    last = events[-1]
    assert last.phase == "done" and (last.done, last.failed, last.total) == (3, 1, 4)
    assert last.rate is not None and last.rate > 0
    assert "3/4 done  1 failed" in last.line()
    ongoing = [e for e in events if e.phase == "item" and e.done + e.failed < 4]
    assert ongoing and ongoing[0].seconds_left is not None
    assert ongoing[0].line().endswith(" left")  # e.g. "1/4 done  12.3 items/s  0:00 left"


# -- refused before anything is sent --------------------------------------------------------------


def test_a_filled_prompt_holding_a_key_is_refused_before_any_request(
    session: Session, server: ItemServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_API_KEY", "sk-shop-0123456789")
    rows = [{"note": "fine"}, {"note": "fine too"}, {"note": "my key is sk-shop-0123456789"}]
    with pytest.raises(PromptError, match=r"\{item\.note\} of item 2 holds an API key") as caught:
        session.map("Note: {item.note}", rows, concurrency=3)
    assert "sk-shop" not in str(caught.value)
    assert server.requests == []


def test_a_field_some_item_lacks_is_refused_before_any_request(
    session: Session, server: ItemServer
) -> None:
    rows = [{"title": "a"}, {"titel": "b"}]
    with pytest.raises(PromptError, match=r"\{item\.title\} names nothing in item 1"):
        session.map("T {item.title}", rows)
    with pytest.raises(PromptError, match="names no"):
        session.map("The same prompt each time", rows)
    with pytest.raises(InvalidOptionError, match="concurrency"):
        session.map("{item}", rows, concurrency=0)
    assert server.requests == []


# -- structured answers ----------------------------------------------------------------------------


def test_a_schema_gives_one_column_per_field(session: Session, server: ItemServer) -> None:
    server.json_reply = lambda prompt, schema: json.dumps(
        {"name": prompt.split()[-1], "year": len(prompt)}
    )
    df = pd.DataFrame({"bio": ["Born: Ada", "Born: Grace"]}, index=["p", "q"])
    result = session.map("{item.bio}", df, schema="name: str, year: int", concurrency=2)
    out = result.output()
    assert list(out.columns) == ["name", "year", "error"] and list(out.index) == ["p", "q"]
    assert out.loc["q", "name"] == "Grace" and out.loc["q", "year"] == len("Born: Grace")
    body = server.requests_to("/v1/chat/completions")[0].json
    assert body["response_format"]["type"] == "json_schema"  # the backend's own constraint was asked


def test_an_item_whose_answer_never_fits_fails_alone_naming_the_field(server: ItemServer) -> None:
    def reply(prompt: str, schema: object) -> str:  # "lost", and the repair asked for it, lack the year
        if "lost" in prompt or "cannot be used" in prompt:
            return '{"name": "x"}'
        return json.dumps({"name": prompt.split()[-1], "year": 1900})

    server.json_reply = reply
    other = serve()
    other.json_reply = reply
    try:
        s = Session("openai", model="test-model")
        result = s.map("Born: {item}", ["Ada", "lost", "Grace", "Alan"], hosts=[server.url, other.url],
                       schema="name: str, year: int", concurrency=2)
        s.close()
        assert result.results[0] == {"name": "Ada", "year": 1900} and result.results[2:] == [
            {"name": "Grace", "year": 1900}, {"name": "Alan", "year": 1900}]
        assert result.error is None and result.failed == 1 and list(result.errors) == [1]
        message = result.errors[1]
        assert "\n" not in message and "'year' is a required property" in message
        # Asked once and repaired once, on one host: the answer is to blame, not the host.
        asked = [
            srv.url for srv in (server, other) for r in srv.requests_to("/v1/chat/completions")
            if "Born: lost" in json.dumps(r.json["messages"])
        ]
        assert len(asked) == 2 and asked[0] == asked[1]
    finally:
        other.stop()
