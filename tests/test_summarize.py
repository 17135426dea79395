"""Summaries against loopback servers over real HTTP: chunks, context, concurrency, hosts, resume.

The servers answer with ``reply(prompt)`` (a knob of tests/servers), so the
notes are short and say which sentences a request held, and every request
is recorded. A document's sentences carry ids (``S0001``...) that the
requests can be searched for.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lollms_magics import get_binding
from lollms_magics.errors import InvalidOptionError
from lollms_magics.summaries import ProgressEvent, Summary, summarize
from lollms_magics.summaries.resume import shared_memory
from tests.servers import OpenAIServer
from tests.servers.base import Recorded, word_count
from tests.servers.openai_compat import message_text

pytestmark = pytest.mark.timeout(60)

_ID = re.compile(r"S\d{4}")


def make_document(sections: int = 12, sentences: int = 10) -> str:
    """Markdown with a heading per section and numbered sentences of ordinary words."""
    parts = []
    number = 0
    for s in range(sections):
        body = []
        for _ in range(sentences):
            number += 1
            body.append(f"Sentence S{number:04d} tells how the committee met in the harbour town again.")
        parts.append(f"## Section {s + 1}\n\n" + " ".join(body[:5]) + "\n\n" + " ".join(body[5:]))
    return "\n\n".join(parts)


def note_reply(prompt: str) -> str:
    """Notes naming the first and last sentence of the part, without the ids themselves."""
    part = prompt.split("<<<", 1)[-1].split(">>>", 1)[0]
    ids = _ID.findall(part)
    if not ids:
        return "- the notes were merged into one list of points"
    return f"- this part runs from sentence {int(ids[0][1:])} to sentence {int(ids[-1][1:])} of the text"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    shared_memory().clear()
    yield
    shared_memory().clear()


def serve(**knobs: Any) -> OpenAIServer:
    server = OpenAIServer()
    server.stall_timeout = 5.0
    server.reply = note_reply
    for name, value in knobs.items():
        setattr(server, name, value)
    return server.start()


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    srv = serve()
    yield srv
    srv.stop()


def binding_for(server: OpenAIServer, **kw: Any) -> Any:
    binding = get_binding("openai", host=server.url, model="test-model", max_retries=0, **kw)
    binding._sleep = lambda _s: None
    return binding


def chat_requests(server: OpenAIServer) -> list[Recorded]:
    return server.requests_to("/v1/chat/completions")


def user_text(request: Recorded) -> str:
    return message_text(request.json["messages"][-1]["content"])


def part_ids(request: Recorded) -> list[str]:
    """The sentence ids inside the request's part markers (none for merging or final calls)."""
    text = user_text(request)
    if "Part " not in text or "<<<" not in text:
        return []
    return _ID.findall(text.split("<<<", 1)[1].split(">>>", 1)[0])


def all_ids(document: str) -> list[str]:
    return _ID.findall(document)


@pytest.mark.parametrize("mode", ["sequential", "map-reduce"])
def test_every_chunk_reaches_the_server_once_and_in_order(server: OpenAIServer, mode: str) -> None:
    document = make_document()
    result = summarize(document, binding_for(server), mode=mode, ctx_size=700)
    assert result.complete and result.mode == mode
    seen = [i for r in chat_requests(server) for i in part_ids(r)]
    assert seen == all_ids(document)  # each sentence once, in the document's order
    chunk_requests = [r for r in chat_requests(server) if part_ids(r)]
    assert len(chunk_requests) == result.chunks > 3
    # One final call after the notes, and the figures count every request.
    assert result.calls == len(chat_requests(server))
    assert "Write a summary of the whole document" in user_text(chat_requests(server)[-1])


def test_no_request_exceeds_the_context(server: OpenAIServer) -> None:
    document = make_document(sections=20)
    ctx = 600
    result = summarize(document, binding_for(server), ctx_size=ctx, n_predict=150)
    assert result.complete
    for request in chat_requests(server):
        # The server counts a token per word; the answer's room counts too.
        words = sum(word_count(message_text(m["content"])) for m in request.json["messages"])
        assert words + request.json["max_tokens"] <= ctx
    assert request.json["max_tokens"] == 150  # the final call has the user's n_predict


def test_chunks_fit_a_tokenizer_coarser_than_the_estimate(server: OpenAIServer) -> None:
    # Two characters per token: far more tokens than the built-in estimate
    # (about four characters); only the exact counts keep requests in the context.
    binding = binding_for(server)
    binding.tokenize = lambda text: list(range(len(text) // 2 + 1))
    document = make_document(sections=6)
    ctx = 1200
    result = summarize(document, binding, ctx_size=ctx, mode="map-reduce")
    assert result.complete
    for request in chat_requests(server):
        if part_ids(request):
            chars = sum(len(message_text(m["content"])) for m in request.json["messages"])
            assert chars // 2 + request.json["max_tokens"] <= ctx
    assert [i for r in chat_requests(server) for i in part_ids(r)] == all_ids(document)


def test_a_document_that_fits_is_summarized_in_one_call(server: OpenAIServer) -> None:
    events: list[ProgressEvent] = []
    text = "The harbour committee met on 3 May 1998 in Brest."
    result = summarize(text, binding_for(server), progress=events.append)
    assert (result.calls, result.chunks) == (1, 1)
    assert (events[-1].phase, events[-1].done, events[-1].total, events[-1].chunk) == ("done", 1, 1, 1)
    assert "The harbour committee met on 3 May 1998 in Brest." in user_text(chat_requests(server)[0])


def test_map_reduce_runs_n_requests_at_once() -> None:
    server = serve(request_delay=0.3)
    try:
        document = make_document(sections=16)
        started = time.perf_counter()
        result = summarize(document, binding_for(server), mode="map-reduce", ctx_size=600, concurrency=4)
        elapsed = time.perf_counter() - started
    finally:
        server.stop()
    assert result.complete and result.chunks >= 8
    # The server counts a request until its handler returns, which can outlast the
    # client's reading of the reply by a moment: the client's next request may overlap it.
    assert 4 <= server.max_in_flight <= 5
    # Serial requests would take chunks × 0.3 s at least.
    assert elapsed < result.chunks * 0.3 * 0.6


def test_two_hosts_share_the_work() -> None:
    first, second = serve(request_delay=0.05), serve(request_delay=0.05)
    try:
        document = make_document(sections=16)
        bindings = [binding_for(first), binding_for(second)]
        result = summarize(document, bindings, mode="map-reduce", ctx_size=600, concurrency=2)
    finally:
        first.stop()
        second.stop()
    assert result.complete
    a = [i for r in chat_requests(first) for i in part_ids(r)]
    b = [i for r in chat_requests(second) for i in part_ids(r)]
    assert a and b  # both hosts read chunks
    assert sorted(a + b) == all_ids(document)  # and together every sentence exactly once


def test_a_failing_host_leaves_its_work_to_the_other() -> None:
    good, bad = serve(), serve()
    bad.fail_next = [(500, {})] * 100
    try:
        document = make_document(sections=12)
        result = summarize(document, [binding_for(bad), binding_for(good)], ctx_size=600, concurrency=2)
    finally:
        good.stop()
        bad.stop()
    assert result.complete, result.error
    assert sorted(i for r in chat_requests(good) for i in part_ids(r)) == all_ids(document)
    assert 1 <= len(chat_requests(bad)) <= 4  # it failed twice per worker at most, then got no more work


def test_a_host_that_is_down_is_not_fatal(server: OpenAIServer) -> None:
    dead = get_binding("openai", host="http://127.0.0.1:9", model="test-model", max_retries=0)
    result = summarize(make_document(), [dead, binding_for(server)], ctx_size=700, concurrency=2)
    assert result.complete
    assert sorted(i for r in chat_requests(server) for i in part_ids(r)) == all_ids(make_document())


def test_a_failure_returns_what_was_done_with_the_error(server: OpenAIServer) -> None:
    answered = []

    def reply(prompt: str) -> str:
        answered.append(prompt)
        if len(answered) == 3:
            server.fail_next.extend([(500, {})] * 10)  # every request after the third fails
        return note_reply(prompt)

    server.reply = reply
    result = summarize(make_document(), binding_for(server), mode="sequential", ctx_size=700)
    assert not result.complete
    assert result.error == (
        f"openai at {server.url}/v1/chat/completions failed "
        "(500: The server had an error while processing your request.); check the server's log"
    )
    assert len(result.steps) == 3
    assert "this part runs from sentence 1 " in result.text  # the notes of the first chunks are kept


def test_the_final_summary_streams(server: OpenAIServer) -> None:
    pieces: list[str] = []
    result = summarize(make_document(), binding_for(server), ctx_size=700, stream=pieces.append)
    assert len(pieces) > 3
    assert "".join(pieces) == result.text != ""


def test_progress_reports_chunk_i_of_n_rate_and_time_left(server: OpenAIServer) -> None:
    events: list[ProgressEvent] = []
    result = summarize(make_document(), binding_for(server), ctx_size=700, progress=events.append)
    chunk_events = [e for e in events if e.phase == "chunk"]
    assert [e.chunk for e in chunk_events] == list(range(1, result.chunks + 1))
    assert all(e.chunks == result.chunks for e in chunk_events)
    assert chunk_events[-1].tokens_per_second and chunk_events[-1].tokens_per_second > 0
    assert chunk_events[0].seconds_left is not None and chunk_events[0].seconds_left > 0
    assert events[0].phase == "start" and events[-1].phase == "done"


class _StopAfter:
    """A progress callback that raises KeyboardInterrupt once ``n`` chunks are done."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, event: ProgressEvent) -> None:
        if event.phase == "chunk" and event.done >= self.n:
            raise KeyboardInterrupt


@pytest.mark.parametrize("mode", ["sequential", "map-reduce"])
def test_an_interrupt_keeps_what_was_done_and_a_rerun_resumes(server: OpenAIServer, mode: str) -> None:
    document = make_document()
    binding = binding_for(server)
    first = summarize(document, binding, mode=mode, ctx_size=700, progress=_StopAfter(3))
    assert not first.complete and first.error == "interrupted"
    assert len([s for s in first.steps if s]) >= 3
    assert "this part runs from sentence 1 " in first.text
    before = len(chat_requests(server))
    done_ids = {i for r in chat_requests(server) for i in part_ids(r)}

    second = summarize(document, binding, mode=mode, ctx_size=700)
    assert second.complete
    assert second.cached >= 3
    again = [i for r in chat_requests(server)[before:] for i in part_ids(r)]
    assert len(again) < len(all_ids(document)) - 20  # finished chunks were not sent again
    assert sorted(set(again) | done_ids) == sorted(set(all_ids(document)))
    assert second.calls == len(chat_requests(server)) - before


def test_resume_false_sends_everything_again(server: OpenAIServer) -> None:
    document = make_document(sections=6)
    first = summarize(document, binding_for(server), ctx_size=700, resume=False)
    second = summarize(document, binding_for(server), ctx_size=700, resume=False)
    assert second.cached == 0 and second.calls == first.calls


def test_resume_on_disk_survives_the_memory(server: OpenAIServer, tmp_path: Any) -> None:
    document = make_document(sections=6)
    first = summarize(document, binding_for(server), ctx_size=700, resume=str(tmp_path))
    shared_memory().clear()  # as if the kernel had restarted
    second = summarize(document, binding_for(server), ctx_size=700, resume=str(tmp_path))
    assert second.cached == first.chunks and second.calls == 1  # only the final call
    assert len(list(tmp_path.glob("*.json"))) == first.chunks


def test_a_looping_answer_is_cut_and_not_carried_forward(server: OpenAIServer) -> None:
    loop = "the committee met and the committee met again and " * 60
    server.reply = lambda prompt: ("- " + loop) if "Part 2 of" in prompt else note_reply(prompt)
    result = summarize(make_document(sections=20), binding_for(server), mode="sequential", ctx_size=4096)
    assert result.complete and result.chunks > 3
    assert result.looped == 1  # cut as soon as it repeated itself
    assert result.steps[1] == ""  # and nothing of it kept
    later = [user_text(r) for r in chat_requests(server)[2:]]
    assert later and all("committee met again" not in t for t in later)


def test_a_context_too_small_is_one_line_before_any_request(server: OpenAIServer) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        summarize(make_document(), binding_for(server), ctx_size=200)
    assert str(caught.value).startswith("a context of 200 tokens is too small for the prompts")
    assert "\n" not in str(caught.value)
    assert chat_requests(server) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "fast"}, "mode must be one of auto, sequential, map-reduce, not 'fast'"),
        ({"concurrency": 0}, "concurrency must be a whole number of at least 1, not 0"),
        ({"overlap": -1}, "--overlap must be 0 or more tokens"),
        ({"chunk_size": 10}, "--chunk-size 10 is too small; give at least 64 tokens"),
    ],
)
def test_bad_options_are_one_line(server: OpenAIServer, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        summarize(make_document(), binding_for(server), ctx_size=700, **options)
    assert str(caught.value) == message


def test_overlap_repeats_the_end_of_each_chunk(server: OpenAIServer) -> None:
    document = make_document()
    summarize(document, binding_for(server), mode="map-reduce", ctx_size=700, overlap=30)
    parts = [part_ids(r) for r in chat_requests(server) if part_ids(r)]
    assert all(later[0] in earlier for earlier, later in itertools.pairwise(parts))
    assert sorted(set(i for p in parts for i in p)) == all_ids(document)


def test_the_summary_object() -> None:
    result = Summary("text", chunks=3, calls=4, wall_time=1.25, source="report.pdf")
    assert str(result) == "text"
    assert repr(result) == "<Summary of report.pdf: 3 chunks, map-reduce, 4 calls, 1.2 s, complete>"


def test_threads_end_with_the_summary(server: OpenAIServer) -> None:
    summarize(make_document(), binding_for(server), ctx_size=700, concurrency=3, mode="map-reduce")
    assert not [t for t in threading.enumerate() if t.name.startswith("summarize-")]


def test_the_top_level_function_and_the_session_method(server: OpenAIServer) -> None:
    import lollms_magics
    from lollms_magics.core.session import Session

    document = make_document(sections=6)
    session = Session("openai", "test-model", server.url)
    result = session.summarize(document, ctx_size=700, hosts=[server.url, server.url], concurrency=2)
    assert result.complete and result.chunks > 1
    shared_memory().clear()
    # The subpackage (lollms_magics.summaries) is imported by now; the name is still the function.
    assert callable(lollms_magics.summarize)
    options = {"binding": "openai", "model": "test-model", "host": server.url, "ctx_size": 700}
    again = lollms_magics.summarize(document, **options)
    assert again.complete and again.chunks == result.chunks
    assert [i for r in chat_requests(server) for i in part_ids(r)].count("S0001") == 2  # once per run


def test_an_interrupt_does_not_wait_for_answers_in_flight() -> None:
    import _thread

    server = serve(slow_pieces=5, slow_delay=3.0)  # a piece every 3 s: reading on would wait
    try:
        binding = get_binding("openai", host=server.url, model="slow", max_retries=0)
        timer = threading.Timer(0.5, _thread.interrupt_main)
        timer.start()
        started = time.perf_counter()
        result = summarize(make_document(), binding, mode="map-reduce", ctx_size=700, concurrency=2)
        elapsed = time.perf_counter() - started
        timer.cancel()
    finally:
        server.stop()
    assert not result.complete and result.error == "interrupted"
    assert elapsed < 2.0  # the two answers in flight were cancelled, not read to their end
    assert result.steps == [] and result.cached == 0
    assert len(server.requests_to("/v1/chat/completions")) == 2


def copying_reply(prompt: str) -> str:
    """Notes as a small model writes them: the framing, a heading, a sentence copied, a made-up number."""
    if "Write a summary" in prompt:
        return "A short summary."
    part = prompt.split("<<<", 1)[-1].split(">>>", 1)[0]
    ids = _ID.findall(part)
    if not ids:
        return note_reply(prompt)
    first = int(ids[0][1:])
    return (
        "- Part 3 of 9 of the document:\n- Section 3\n"
        f"- Sentence {ids[0]} tells how the committee met in the harbour town again.\n"
        f"- The committee met {first + 1000} times in the harbour town."
    )


def test_the_key_facts_of_the_notes_end_the_default_summary(server: OpenAIServer) -> None:
    server.reply = copying_reply
    document = make_document()
    result = summarize(document, binding_for(server), ctx_size=700)
    reads = [r for r in chat_requests(server) if user_text(r).startswith("Part ")]  # not the merges
    firsts = [part_ids(r)[0] for r in reads]
    assert len(firsts) == result.chunks > 10
    summary, facts = result.text.split("\n\nKey facts:\n")
    assert summary == "A short summary."
    copied = [f"- Sentence {i} tells how the committee met in the harbour town again." for i in firsts]
    # Only the sentence each part copied: not the framing, the heading or the invented count.
    # The final call's n_predict (175 tokens at this context) holds fewer lines than there are
    # parts: they come from the whole document, in its order, not from its first parts only.
    lines = facts.splitlines()
    assert 5 <= len(lines) < len(copied)
    assert all(line in copied for line in lines)
    positions = [copied.index(line) for line in lines]
    assert positions == sorted(positions)
    assert positions[0] == 0 and positions[-1] >= 3 * len(copied) // 4
    shared_memory().clear()
    formatted = summarize(make_document(), binding_for(server), ctx_size=700, format="one sentence")
    assert formatted.text == "A short summary."  # an explicit format is the model's text alone
