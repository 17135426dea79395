"""Spreading independent calls over one or several hosts, each with its own concurrency.

Each host (a binding) gets ``concurrency`` worker threads that take jobs
from one shared queue, so a fast host simply takes more of them. A job that
fails on a host goes back to the queue for another host; a host that fails
twice in a row (or cannot be reached at all) gets no more jobs. The work
fails only when every host is down or a job has failed on every host.

Threads are safe here: each binding's ``httpx.Client`` is thread-safe and
the embedded llama.cpp model serializes its own calls. An interrupt (or a
failure) sets the caller's cancel flag, which every running call checks
between two pieces of its answer, so the workers stop within one piece.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..errors import BindingError, BindingTimeout, ServerUnreachableError
from .calls import Cancelled

__all__ = ["Host", "run_jobs", "run_on_first"]

J = TypeVar("J")
R = TypeVar("R")
_FAILURES_BEFORE_DOWN = 2


@dataclass
class Host:
    """A binding and how many requests it takes at once."""

    binding: Any
    slots: int = 1
    failures: int = 0
    down: bool = False

    @property
    def label(self) -> str:
        return str(getattr(self.binding, "host", "") or getattr(self.binding, "name", "binding"))

    def failed(self, error: BindingError) -> None:
        self.failures += 1
        if self.failures >= _FAILURES_BEFORE_DOWN or isinstance(
            error, (ServerUnreachableError, BindingTimeout)
        ):
            self.down = True


class _Run(Generic[J, R]):
    """The shared state of one batch of jobs."""

    def __init__(
        self, hosts: Sequence[Host], jobs: Sequence[J], cancel: threading.Event, stop: Callable[[], None]
    ) -> None:
        self.hosts = hosts
        self.jobs = jobs
        self.cancel = cancel
        self.stop = stop
        self.pending: queue.Queue[int] = queue.Queue()
        for index in range(len(jobs)):
            self.pending.put(index)
        self.results: dict[int, R] = {}
        self.attempts = [0] * len(jobs)
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.finished = threading.Event()

    def fail(self, error: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = error
        self.stop()
        self.finished.set()


def run_jobs(
    hosts: Sequence[Host],
    jobs: Sequence[J],
    work: Callable[[Any, J], R],
    cancel: threading.Event,
    on_done: Callable[[int, R], None] | None = None,
    stop: Callable[[], None] | None = None,
) -> list[R]:
    """``work(binding, job)`` for every job, spread over ``hosts``; results in the jobs' order.

    ``stop`` ends the calls in flight (an interrupt, a failure); by default it sets ``cancel``.
    """
    if not jobs:
        return []
    run: _Run[J, R] = _Run(hosts, jobs, cancel, stop or cancel.set)
    threads = [
        threading.Thread(target=_worker, args=(run, host, work, on_done), daemon=True, name=f"summarize-{n}")
        for host in hosts
        if not host.down
        for n in range(max(1, host.slots))
    ]
    for thread in threads:
        thread.start()
    try:
        while not run.finished.wait(0.05):  # short waits keep the main thread interruptible
            # Every worker gone, and not because the last one finished the work (it sets
            # `finished` before leaving, possibly just after the wait above timed out).
            if not any(t.is_alive() for t in threads) and not run.finished.is_set():
                run.fail(_all_down(hosts))
    except BaseException:
        run.stop()  # KeyboardInterrupt: the calls in flight end at once
        raise
    finally:
        for thread in threads:
            thread.join(timeout=30)
    if run.error is not None:
        raise run.error
    return [run.results[i] for i in range(len(jobs))]


def _worker(run: _Run[J, R], host: Host, work: Callable[[Any, J], R], on_done: Any) -> None:
    while not run.finished.is_set() and not host.down:
        try:
            index = run.pending.get(timeout=0.05)
        except queue.Empty:
            continue
        try:
            result = work(host.binding, run.jobs[index])
        except Cancelled:
            return
        except BindingError as error:
            with run.lock:
                host.failed(error)
                run.attempts[index] += 1
                alive = [h for h in run.hosts if not h.down]
                spent = run.attempts[index] >= max(2, len(run.hosts))
            if not alive or spent:
                run.fail(error)
                return
            run.pending.put(index)  # another host (or this one, if still up) takes it again
            continue
        except BaseException as error:  # a bug, or a user callback that raised: stop everything
            run.fail(error)
            return
        with run.lock:
            host.failures = 0
            run.results[index] = result
            complete = len(run.results) == len(run.jobs)
        if on_done is not None:
            try:
                on_done(index, result)
            except BaseException as error:  # a progress callback that raised (even KeyboardInterrupt)
                run.fail(error)
                return
        if complete:
            run.finished.set()


def _all_down(hosts: Sequence[Host]) -> BindingError:
    names = ", ".join(h.label for h in hosts)
    return ServerUnreachableError(f"every host failed ({names}); check that the servers run")


def run_on_first(hosts: Sequence[Host], work: Callable[[Any], R]) -> R:
    """``work(binding)`` on the first host that is up, moving to the next when one fails."""
    last: BindingError | None = None
    for host in hosts:
        while not host.down:
            try:
                result = work(host.binding)
            except BindingError as error:
                host.failed(error)
                last = error
                continue
            host.failures = 0
            return result
    if last is not None:
        raise last
    raise _all_down(hosts)
