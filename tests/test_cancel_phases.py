"""Stop stops in every phase of a request, on the paths a busy local server puts it on.

llama.cpp and Ollama serve one generation at a time by default: a second
prompt waits, before any header, until the first is done, and it usually
goes on a keep-alive connection the client already holds. A Stop pressed
then, during the wait before a retry (``Retry-After``), while connecting, or
while the answer streams, must end the answer at once: within ``BOUND``
seconds on a loaded machine, where it used to take the 30-120 s of a
timeout or a ``Retry-After``. The text received is kept, the finish reason
is ``"cancelled"``, and the binding's next request works (its connection
pool is left healthy). The retry's wait here is the real one.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from lollms_magics import get_binding
from lollms_magics.response import Response
from lollms_magics.transport import retry
from tests.servers.base import LoopbackServer, Recorded, plan_reply
from tests.test_magics import cell, final, ip  # noqa: F401  (ip is the fixture)

pytestmark = pytest.mark.timeout(90)

PROMPT = "Tell me a story"
ECHO = plan_reply("test-model", PROMPT, None).text
BOUND = 3.0  # seconds a cancel may take to end the answer, under load
LONG = 60.0  # the timeouts here: only a cancel may end a wait early


class Case:
    """A server flavour and a binding on it (Ollama's NDJSON, OpenAI's and llama.cpp's SSE)."""

    def __init__(self, kind: str, server: LoopbackServer) -> None:
        self.kind, self.server = kind, server
        self.binding = self.new_binding()

    def new_binding(self, **config: Any) -> Any:
        return get_binding(self.kind, host=self.server.url, read_timeout=LONG, **config)

    def generate(self, model: str = "test-model") -> Response:
        return self.binding.generate(PROMPT, model=model)

    def generations(self) -> list[Recorded]:
        return [r for r in self.server.requests if r.path in self.server.generation_paths]


@pytest.fixture(params=["openai", "ollama"])
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    server = request.getfixturevalue(f"{request.param}_server")
    server.stall_timeout = LONG
    made = Case(request.param, server)
    yield made
    made.binding.close()


def stop_when(response: Response, ready: Callable[[list[str]], bool]) -> tuple[list[str], float]:
    """Iterate ``response``; another thread cancels it once ``ready(pieces so far)`` holds.

    Returns the pieces received and the seconds from the cancel to the end of the loop.
    """
    received: list[str] = []
    cancelled_at: list[float] = []

    def watch() -> None:
        give_up = time.monotonic() + 20
        while not ready(received) and time.monotonic() < give_up:
            time.sleep(0.01)
        cancelled_at.append(time.monotonic())
        response.cancel()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    for piece in response:
        received.append(piece)
    ended = time.monotonic()
    watcher.join(5)
    assert cancelled_at, "the answer was never cancelled"
    return received, ended - cancelled_at[0]


def after(seconds: float, condition: Callable[[], bool] = lambda: True) -> Callable[[list[str]], bool]:
    """Ready ``seconds`` after ``condition`` first holds."""
    since: list[float] = []

    def ready(_: list[str]) -> bool:
        if not since and condition():
            since.append(time.monotonic())
        return bool(since) and time.monotonic() - since[0] >= seconds

    return ready


def assert_cancelled(response: Response, received: list[str]) -> None:
    assert response.text == "".join(received)
    assert not response.done and response.interrupted
    assert response.finish_reason == "cancelled"
    assert response.error is None


def assert_next_request_works(case: Case) -> None:
    answer = case.generate()
    assert answer.text == ECHO and answer.done


def pool_a_connection(case: Case) -> tuple[str, int] | None:
    """A request whose connection stays in the binding's pool (a model list); its address.

    (An OpenAI stream is left at its ``[DONE]``, which closes its connection;
    a model list, read whole, leaves it open, as before a prompt that names
    no model.)
    """
    assert case.binding.list_models()
    return case.server.requests[-1].peer


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)
    return condition()


@contextmanager
def slot_taken(case: Case) -> Iterator[None]:
    """Another client's answer holds the server's only slot (its stream stalls) until the block ends."""
    case.server.slots = 1
    other = case.new_binding()
    answer = other.generate(PROMPT, model="stall")
    reader = threading.Thread(target=lambda: answer.text, daemon=True)
    reader.start()
    assert wait_until(lambda: case.server.in_flight >= 1), "the other answer never started"
    try:
        yield
    finally:
        answer.cancel()
        reader.join(5)
        other.close()


# -- queued: the server has the request, and sends nothing until a slot frees ------


def test_cancel_while_queued_on_a_reused_connection(case: Case) -> None:
    pooled = pool_a_connection(case)
    with slot_taken(case):
        response = case.generate()
        received, took = stop_when(response, after(0.2, lambda: case.server.queued >= 1))
        queued = case.generations()[-1]
        assert queued.peer == pooled  # sent on the pooled connection
        assert took < BOUND  # not the 60 s read timeout
        assert received == []
        assert_cancelled(response, received)
        # the server saw the client hang up while the request was queued
        assert wait_until(lambda: any(gone is queued for gone in case.server.disconnects))
    assert_next_request_works(case)


def test_cancel_while_queued_on_a_new_connection(case: Case) -> None:
    with slot_taken(case):
        response = case.generate()
        received, took = stop_when(response, after(0.2, lambda: case.server.queued >= 1))
        assert took < BOUND
        assert_cancelled(response, received)
    assert_next_request_works(case)


# -- the wait before a retry ----------------------------------------------------------


def test_cancel_during_the_wait_a_retry_after_asks_for(case: Case) -> None:
    pooled = pool_a_connection(case)
    case.server.fail_next.append((429, {"Retry-After": "30"}))
    response = case.generate()
    # cancelled 0.3 s after the 429 came: the binding is in its 30 s wait
    received, took = stop_when(response, after(0.3, lambda: len(case.generations()) >= 1))
    assert took < BOUND
    assert_cancelled(response, received)
    assert case.generations()[0].peer == pooled
    time.sleep(0.5)
    assert len(case.generations()) == 1  # no retry followed the cancel
    assert_next_request_works(case)


def test_cancel_during_the_backoff_after_a_refused_connection(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retry, "backoff_delay", lambda attempt: 30.0)  # as a long backoff would
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    binding = get_binding(case.kind, host=url, read_timeout=LONG)
    response = binding.generate(PROMPT, model="test-model")
    received, took = stop_when(response, after(0.3))
    assert took < BOUND
    assert_cancelled(response, received)
    binding.close()


# -- connecting -------------------------------------------------------------------


def fill_listen_queue(server: LoopbackServer) -> list[socket.socket]:
    """Connections that fill the listen queue of a server that takes none, so the next connect hangs."""
    held: list[socket.socket] = []
    for _ in range(64):
        sock = socket.socket()
        sock.settimeout(0.5)
        try:
            sock.connect(("127.0.0.1", server.port))
        except TimeoutError:  # the kernel drops the handshake now: the queue is full
            sock.close()
            return held
        held.append(sock)
    for sock in held:
        sock.close()
    pytest.skip("the listen queue never filled here, so a connect cannot be made to hang")


def test_cancel_while_connecting(case: Case) -> None:
    case.server.pause_accepting()
    held = fill_listen_queue(case.server)
    try:
        binding = case.new_binding(connect_timeout=LONG)  # no pooled connection
        response = binding.generate(PROMPT, model="test-model")
        received, took = stop_when(response, after(0.3))
        assert took < BOUND  # not the 60 s connect timeout
        assert_cancelled(response, received)
    finally:
        for sock in held:
            sock.close()
        case.server.resume_accepting()
    answer = binding.generate(PROMPT, model="test-model")
    assert answer.text == ECHO and answer.done
    binding.close()


# -- streaming --------------------------------------------------------------------


def test_cancel_while_a_stream_on_a_reused_connection_is_silent(case: Case) -> None:
    pooled = pool_a_connection(case)
    response = case.generate("stall")  # two pieces, then nothing for 60 s
    sent = "".join(plan_reply("stall", PROMPT, None).pieces[:2])
    received, took = stop_when(response, lambda pieces: "".join(pieces) == sent)
    assert took < BOUND
    assert "".join(received) == sent
    assert_cancelled(response, received)
    assert case.generations()[0].peer == pooled
    assert case.server.wait_for_disconnect(5)
    assert_next_request_works(case)


def test_cancel_while_a_slow_stream_flows(case: Case) -> None:
    case.server.slow_pieces, case.server.slow_delay = 3000, 0.02  # a minute of text
    response = case.generate("slow")
    received, took = stop_when(response, lambda pieces: len(pieces) >= 5)
    assert took < BOUND
    assert 5 <= len(received) < 3000
    assert "".join(received) == " tok" * len(received)
    assert_cancelled(response, received)
    assert_next_request_works(case)


# -- the magic: Ctrl-C (a Stop in Jupyter) while the prompt is queued -------------------


def test_a_magic_interrupted_while_its_prompt_is_queued_stops_at_once(ip: Any, ollama_server: Any) -> None:  # noqa: F811
    from IPython.utils.capture import capture_output

    ollama_server.stall_timeout = LONG
    line = f"-b ollama --host {ollama_server.url} -m test-model"
    assert final(cell(ip, line, PROMPT)).data["text/plain"] == ECHO
    case = Case("ollama", ollama_server)
    sent_at: list[float] = []

    def press_stop() -> None:  # a real SIGINT, as the kernel gets: it wakes a blocked read
        if wait_until(lambda: ollama_server.queued >= 1):
            time.sleep(0.2)
            sent_at.append(time.monotonic())
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    with slot_taken(case):
        stopper = threading.Thread(target=press_stop, daemon=True)
        stopper.start()
        with capture_output() as cap, pytest.raises(KeyboardInterrupt):
            ip.run_cell_magic("lollms", line, PROMPT)
        took = time.monotonic() - sent_at[0]
        stopper.join(5)
        assert took < BOUND
        assert "interrupted; 0 characters kept" in cap.stderr
        queued = case.generations()[-1]
        assert wait_until(lambda: any(gone is queued for gone in ollama_server.disconnects))
    case.binding.close()
    assert final(cell(ip, line, PROMPT)).data["text/plain"] == ECHO  # the next cell is answered


# -- an image job: Ctrl-C while its request waits to be retried ---------------------------


def test_ctrl_c_during_an_image_jobs_retry_wait_leaves_nothing_running(a1111_server: Any) -> None:
    from lollms_magics.tti import get_image_binding

    a1111_server.fail_next.append((503, {"Retry-After": "30"}))  # busy: come back in 30 s
    binding = get_image_binding("a1111", host=a1111_server.url, poll_interval=0.05)
    jobs = lambda: a1111_server.requests_to("/sdapi/v1/txt2img")  # noqa: E731
    before = set(threading.enumerate())
    sent_at: list[float] = []

    def press_stop() -> None:
        if wait_until(lambda: len(jobs()) >= 1):
            time.sleep(0.3)
            sent_at.append(time.monotonic())
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    threading.Thread(target=press_stop, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        binding.create_images("owl", steps=5)
    assert time.monotonic() - sent_at[0] < BOUND
    workers = lambda: [t for t in threading.enumerate() if t not in before and "image-job" in t.name]  # noqa: E731
    assert wait_until(lambda: not workers(), BOUND), "the job's thread still waits to retry"
    time.sleep(0.5)
    assert len(jobs()) == 1  # no retry followed the Stop
    assert binding.create_images("owl", steps=5).images  # the next picture comes
    binding.close()
