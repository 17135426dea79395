"""Summaries stopped or failing where the workers are: idle workers, a flaky host, a Stop, the window.

Every test runs against loopback servers over real HTTP. A Ctrl-C is
``_thread.interrupt_main()``: the main thread gets a real KeyboardInterrupt
while the workers run.
"""

from __future__ import annotations

import _thread
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lollms_magics import get_binding
from lollms_magics.summaries import ProgressEvent, summarize
from lollms_magics.summaries.calls import Cancelled
from lollms_magics.summaries.resume import CallCache, shared_memory
from tests.servers import OllamaServer, OpenAIServer
from tests.servers.base import Exchange, Plan
from tests.test_summarize import binding_for, chat_requests, make_document, note_reply, serve

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    shared_memory().clear()
    yield
    shared_memory().clear()


def summary_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("summarize-")]


def wait_for_no_summary_thread(seconds: float = 15.0) -> list[threading.Thread]:
    """The summary threads still alive after waiting up to ``seconds`` for them to end."""
    deadline = time.monotonic() + seconds
    while summary_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    return summary_threads()


def part_ids_of(prompt_text: str) -> list[str]:
    """The words between a part's markers (empty for merging and final prompts)."""
    return [] if "<<<" not in prompt_text else prompt_text.split("<<<", 1)[1].split(">>>", 1)[0].split()


class SlowServer(OpenAIServer):
    """Answers at once, except the prompts ``is_slow`` picks: a piece per second.

    ``interrupt_after``: seconds after the first slow answer starts to press Ctrl-C (None: never);
    ``interrupted_at`` holds when it was pressed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stall_timeout = 5.0
        self.is_slow = lambda prompt: False
        self.interrupt_after: float | None = None
        self.interrupted_at: list[float] = []

    def plan(self, model: str, prompt_text: str, limit: int | None) -> Plan:
        plan = super().plan(model, prompt_text, limit)
        if self.is_slow(prompt_text):
            plan.delay = 1.0
            with self._lock:
                first = self.interrupt_after is not None and not self.interrupted_at
                if first:
                    self.interrupted_at.append(0.0)
            if first:
                threading.Timer(self.interrupt_after or 0.0, self._interrupt).start()
        return plan

    def _interrupt(self) -> None:
        self.interrupted_at[0] = time.perf_counter()
        _thread.interrupt_main()  # Ctrl-C, while the slow answer streams


def is_last_part(prompt_text: str) -> bool:
    if "<<<" not in prompt_text or "Part " not in prompt_text:
        return False
    number, total = prompt_text.split("Part ", 1)[1].split(" of the document", 1)[0].split(" of ")
    return number == total


def test_an_interrupt_while_workers_are_idle_returns_at_once_and_leaves_no_thread() -> None:
    server = SlowServer()
    server.reply, server.is_slow, server.interrupt_after = note_reply, is_last_part, 0.5
    server.start()
    try:
        result = summarize(make_document(sections=3), binding_for(server), mode="map-reduce", ctx_size=700,
                           concurrency=4)
        returned = time.perf_counter()
    finally:
        server.stop()
    assert 2 <= result.chunks <= 3  # fewer jobs than the 4 slots: two workers at least were idle
    assert not result.complete and result.error == "interrupted"
    assert server.interrupted_at and returned - server.interrupted_at[0] < 3.0  # it was 30 s per idle worker
    assert len([s for s in result.steps if s]) == result.chunks - 1  # the finished notes are kept
    assert wait_for_no_summary_thread() == []  # and no worker polls on afterwards


def long_notes(prompt: str) -> str:
    """A note per sentence of a part (so the notes need merging); a short list for a merge."""
    if "Merge these notes" in prompt:
        return "- the merged notes say the committee met"
    # Not words of the part: a copy would be cut from the notes (summaries.copies).
    return "\n".join(f"- a meeting was held, as line {i} records" for i in part_ids_of(prompt)
                     if i.startswith("S0"))


def test_an_interrupt_during_a_merge_round_with_idle_workers_is_as_quick() -> None:
    server = SlowServer()
    server.reply, server.interrupt_after = long_notes, 0.5
    server.is_slow = lambda prompt: "Merge these notes" in prompt
    server.start()
    try:
        result = summarize(make_document(sections=36), binding_for(server), mode="map-reduce", ctx_size=700,
                           concurrency=8)
        returned = time.perf_counter()
    finally:
        server.stop()
    merges = [r for r in chat_requests(server) if "Merge these notes" in json.dumps(r.json)]
    assert 1 <= len(merges) < 8  # the interrupt came in a merge round with fewer jobs than workers
    assert not result.complete and result.error == "interrupted"
    assert server.interrupted_at and returned - server.interrupted_at[0] < 3.0
    assert wait_for_no_summary_thread() == []


class FailsPartTwo(OpenAIServer):
    """A host that answers everything but the second part's notes (a 500 every time)."""

    def chat(self, ex: Exchange) -> None:
        if "Part 2 of" in json.dumps(ex.json):
            self.error(ex, 500, "part two upsets this server", "server_error")
            return
        super().chat(ex)


def tries_of_part_two(server: OpenAIServer) -> int:
    return len([r for r in chat_requests(server) if "Part 2 of" in json.dumps(r.json)])


def test_a_job_a_flaky_host_failed_goes_to_the_host_that_has_not_tried_it() -> None:
    flaky = FailsPartTwo()
    flaky.stall_timeout = 5.0
    flaky.reply = note_reply
    flaky.start()
    healthy = serve(request_delay=0.5)  # busy long enough for the flaky host to come back to part 2
    try:
        document = make_document(sections=12)
        result = summarize(document, [binding_for(flaky), binding_for(healthy)], mode="map-reduce",
                           ctx_size=700, concurrency=2)
    finally:
        flaky.stop()
        healthy.stop()

    assert result.complete, result.error
    assert tries_of_part_two(flaky) == 1  # it failed part 2 once and was not given it again...
    assert tries_of_part_two(healthy) == 1  # ...the other host was, and read it
    assert all(result.steps[: result.chunks])  # every part has its notes


def test_a_job_every_host_failed_fails_the_summary_with_the_error() -> None:
    first, second = FailsPartTwo(), FailsPartTwo()
    for server in (first, second):
        server.stall_timeout = 5.0
        server.reply = note_reply
        server.start()
    try:
        result = summarize(make_document(sections=12), [binding_for(first), binding_for(second)],
                           mode="map-reduce", ctx_size=700, concurrency=2)
    finally:
        first.stop()
        second.stop()
    assert not result.complete
    assert result.error is not None and "part two upsets this server" in result.error
    counts = [tries_of_part_two(s) for s in (first, second)]
    assert counts == [1, 1]  # once on each host, then given up


class StopsAfter:
    """A binding whose answers raise ``Cancelled`` once ``n`` calls were made (a Stop button's)."""

    def __init__(self, binding: Any, n: int) -> None:
        self.binding = binding
        self.n = n
        self.calls = 0

    def __getattr__(self, name: str) -> Any:  # model, host, tokenize...: the binding's own
        return getattr(self.binding, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls > self.n:
            raise Cancelled()
        return self.binding.generate(*args, **kwargs)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    srv = serve()
    yield srv
    srv.stop()


def test_a_stop_from_the_calls_is_a_stop_not_every_host_failing(server: OpenAIServer) -> None:
    binding = StopsAfter(binding_for(server), 2)
    result = summarize(make_document(), binding, mode="map-reduce", ctx_size=700, concurrency=2)
    assert not result.complete
    assert result.error == "interrupted"
    assert wait_for_no_summary_thread() == []


# -------------------------------------------------------------------- the window


def test_the_context_size_asked_for_reaches_ollama_as_num_ctx(ollama_server: OllamaServer) -> None:
    ollama_server.reply = note_reply
    binding = get_binding("ollama", host=ollama_server.url, model="test-model", max_retries=0)
    events: list[ProgressEvent] = []
    result = summarize(make_document(), binding, mode="map-reduce", ctx_size=700, concurrency=2,
                       progress=events.append)
    requests = ollama_server.requests_to("/api/chat")
    assert result.complete and result.chunks > 3 and len(requests) == result.calls
    assert [r.json["options"]["num_ctx"] for r in requests] == [700] * len(requests)
    assert result.notices == [] and not [e for e in events if e.phase == "notice"]


def test_without_a_context_size_ollama_keeps_its_own(ollama_server: OllamaServer) -> None:
    ollama_server.reply = note_reply
    binding = get_binding("ollama", host=ollama_server.url, model="test-model", max_retries=0)
    summarize(make_document(sections=2), binding)
    assert all("num_ctx" not in (r.json.get("options") or {}) for r in ollama_server.requests_to("/api/chat"))


def test_a_server_that_takes_no_context_size_is_said_once(server: OpenAIServer) -> None:
    events: list[ProgressEvent] = []
    result = summarize(make_document(), [binding_for(server), binding_for(server)], ctx_size=700,
                       concurrency=2, progress=events.append)
    assert result.complete
    line = (
        f"openai at {server.url}/v1 cannot be given a context size: its server keeps its own window, "
        "which must hold 700 tokens or the parts are cut"
    )
    assert result.notices == [line]  # two bindings on one server: said once
    assert [e.message for e in events if e.phase == "notice"] == [line]
    assert all("ctx_size" not in r.json and "num_ctx" not in r.json for r in chat_requests(server))


# -------------------------------------------------------------------- resume on disk


def test_identical_calls_at_once_share_the_resume_folder(tmp_path: Path) -> None:
    key, value = "a" * 64, {"text": "- the notes", "finish_reason": "stop"}
    writers, rounds = 8, 100
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write() -> None:
        cache = CallCache(str(tmp_path))
        start.wait()
        try:
            for _ in range(rounds):
                cache.put(key, value)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert [p.name for p in tmp_path.iterdir()] == [f"{key}.json"]  # no temporary file left behind
    shared_memory().clear()
    assert CallCache(str(tmp_path)).get(key) == value  # the answer survives the kernel


def test_two_identical_summaries_at_once_both_finish_with_a_resume_folder(
    server: OpenAIServer, tmp_path: Path
) -> None:
    document = make_document()
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(summarize(document, binding_for(server), ctx_size=700, concurrency=3,
                                     resume=str(tmp_path)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(results) == 2 and all(r.complete for r in results)
    assert len(list(tmp_path.glob("*.json"))) == results[0].chunks
    assert [p.suffix for p in tmp_path.iterdir()] == [".json"] * results[0].chunks  # no temporary left
