"""Spreading independent calls over one or several hosts, each with its own concurrency.

Each host (a binding) gets ``concurrency`` worker threads that take jobs
from one shared list, so a fast host simply takes more of them. A job that
fails on a host goes back to the list for a host that has not failed it
yet; only when every host still up has failed it is it tried again where it
failed (so a single host gets a second try). A host that fails twice in a
row (or cannot be reached at all) gets no more jobs. The work fails only
when every host is down, or a job has failed on every host and twice.

Threads are safe here: each binding's ``httpx.Client`` is thread-safe and
the embedded llama.cpp model serializes its own calls. An interrupt (or a
failure, or a Stop) ends the run: the calls in flight are cancelled, the
idle workers are woken and leave, and :func:`run_jobs` returns within a
second without waiting for answers that would never be used.

:func:`run_jobs` is all or nothing (a summary needs every part);
:func:`run_each` runs independent jobs (one prompt over many items, see
:mod:`lollms_magics.core.mapping`) on the same workers: a job that failed
on every host it may try is given to ``on_failed`` and the others go on,
and an error that blames the request rather than the host (``job_errors``,
a 400 say) is given up at once, neither retried elsewhere nor counted
against the host. A host there is given up after two failures in a row
of any kind: among a thousand requests, one cut connection is not an outage.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..errors import BindingError, BindingTimeout, ServerUnreachableError
from .calls import Cancelled

__all__ = ["Host", "run_each", "run_jobs", "run_on_first"]

J = TypeVar("J")
R = TypeVar("R")
_FAILURES_BEFORE_DOWN = 2
_IDLE_WAIT = 0.25  # an idle worker re-checks the cancel flag this often (it is set outside the run)
_JOIN_SECONDS = 1.0  # after a stop, how long the workers in flight get to leave


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

    def failed(self, error: BindingError, at_once: bool = True) -> None:
        """Count a failure; ``at_once``: a host that cannot be reached (or timed out) is down now."""
        self.failures += 1
        if self.failures >= _FAILURES_BEFORE_DOWN or (
            at_once and isinstance(error, (ServerUnreachableError, BindingTimeout))
        ):
            self.down = True


class _Run(Generic[J, R]):
    """The shared state of one batch of jobs; ``changed`` wakes the idle workers."""

    def __init__(
        self,
        hosts: Sequence[Host],
        jobs: Sequence[J],
        cancel: threading.Event,
        stop: Callable[[], None],
        on_failed: Callable[[int, BindingError], bool] | None = None,
        job_errors: tuple[type[BindingError], ...] = (),
    ) -> None:
        self.hosts = list(hosts)
        self.jobs = jobs
        self.cancel = cancel
        self.stop = stop
        self.on_failed = on_failed  # None: a job that fails for good fails the run
        self.job_errors = job_errors
        self.pending: deque[int] = deque(range(len(jobs)))
        # The places of the hosts that failed each job; sparse, as most jobs never fail
        # (a set per job would weigh 20 MB over 100,000 items).
        self.failed_on: dict[int, set[int]] = {}
        self.attempts: dict[int, int] = {}
        self.results: dict[int, R] = {}
        self.keep_results = on_failed is None  # run_each hands results over and keeps none
        self.settled = 0  # jobs finished or given up
        self.error: BaseException | None = None
        self.changed = threading.Condition()
        self.finished = threading.Event()

    def take(self, place: int) -> int | None:
        """The next job for the host at ``place`` (waiting while none is left); None: leave."""
        host = self.hosts[place]
        with self.changed:
            while not (self.finished.is_set() or self.cancel.is_set() or host.down):
                for index in self.pending:
                    if self._fits(index, place):
                        self.pending.remove(index)
                        return index
                self.changed.wait(_IDLE_WAIT)
        return None

    def _fits(self, index: int, place: int) -> bool:
        tried = self.failed_on.get(index)
        if not tried or place not in tried:
            return True
        # Every host still up has failed this job: it may be tried again where it failed.
        return all(p in tried for p, h in enumerate(self.hosts) if not h.down)

    def failed(self, index: int, place: int, error: BindingError) -> bool:
        """A job failed on a host: True when it went back to the list, False when the work failed."""
        with self.changed:
            # Independent jobs: one cut connection or one slow answer among many does not
            # mean the host is gone; two failures in a row (none succeeding between) do.
            self.hosts[place].failed(error, at_once=self.on_failed is None)
            tried = self.failed_on.setdefault(index, set())
            tried.add(place)
            self.attempts[index] = self.attempts.get(index, 0) + 1
            up = [p for p, h in enumerate(self.hosts) if not h.down]
            untried = [p for p in up if p not in tried]
            if up and (untried or self.attempts[index] < _FAILURES_BEFORE_DOWN):
                self.pending.appendleft(index)
                self.changed.notify_all()  # a host's idle workers may take it (or leave: it went down)
                return True
        if up and self.on_failed is not None:  # hosts remain for the other jobs
            return self.give_up(index, error)
        self.fail(error)
        return False

    def give_up(self, index: int, error: BindingError) -> bool:
        """``on_failed`` keeps a job's failure: True when the run goes on, False when it ended."""
        assert self.on_failed is not None
        try:
            keep_going = self.on_failed(index, error)
        except BaseException as exc:  # a callback that raised: stop everything
            self.fail(exc)
            return False
        if not keep_going:
            self.fail(error)
            return False
        with self.changed:
            self.settled += 1
            last = self.settled == len(self.jobs)
        if last:
            self.end()
        return True

    def succeeded(self, index: int, place: int, result: R) -> bool:
        """A job's result; True when it was the last one."""
        with self.changed:
            self.hosts[place].failures = 0
            if self.keep_results:
                self.results[index] = result
            self.settled += 1
            return self.settled == len(self.jobs)

    def end(self) -> None:
        """Every job is done (or the run is abandoned): the idle workers leave."""
        with self.changed:
            self.finished.set()
            self.changed.notify_all()

    def fail(self, error: BaseException) -> None:
        """End the run with ``error`` (the first one wins); the calls in flight are cancelled."""
        with self.changed:
            if self.error is None:
                self.error = error
        self.end()
        self.stop()


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
    A stop (``Cancelled`` from a call) raises ``Cancelled``; an interrupt returns within a
    second, leaving no worker waiting for work.
    """
    if not jobs:
        return []
    run: _Run[J, R] = _Run(hosts, jobs, cancel, stop or cancel.set)
    _drive(run, work, on_done, "summarize")
    return [run.results[i] for i in range(len(jobs))]


def run_each(
    hosts: Sequence[Host],
    jobs: Sequence[J],
    work: Callable[[Any, J], R],
    cancel: threading.Event,
    *,
    on_done: Callable[[int, R], None],
    on_failed: Callable[[int, BindingError], bool],
    stop: Callable[[], None] | None = None,
    job_errors: tuple[type[BindingError], ...] = (),
    name: str = "lollms-each",
) -> None:
    """``work(binding, job)`` for every job, spread over ``hosts``, each job on its own.

    Results go to ``on_done(index, result)`` as they come. A job that failed
    on every host it may try (or raised one of ``job_errors``, which blame the
    request, not the host) goes to ``on_failed(index, error)``: returning True
    lets the others go on, False ends the run with that error. Raises like
    :func:`run_jobs` otherwise: every host down, a Stop (``Cancelled``), an
    interrupt (within a second), a bug. Workers are threads called ``name-N``.
    """
    if not jobs:
        return
    run: _Run[J, R] = _Run(hosts, jobs, cancel, stop or cancel.set, on_failed, job_errors)
    _drive(run, work, on_done, name)


def _drive(run: _Run[J, R], work: Callable[[Any, J], R], on_done: Any, name: str) -> None:
    """Run the workers of ``run`` until every job is settled or the run ends; raise its error."""
    hosts, cancel = run.hosts, run.cancel
    threads = [
        threading.Thread(target=_worker, args=(run, place, work, on_done), daemon=True, name=f"{name}-{n}")
        for place, host in enumerate(hosts)
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
                run.fail(Cancelled() if cancel.is_set() else _all_down(hosts))
    except BaseException:
        run.end()  # KeyboardInterrupt: the idle workers leave now...
        run.stop()  # ...and the calls in flight end at once
        raise
    finally:
        _join(threads, _JOIN_SECONDS)
    if run.error is not None:
        raise run.error


def _join(threads: list[threading.Thread], seconds: float) -> None:
    """Wait up to ``seconds`` in all (not per thread) for the workers to leave.

    A worker still inside a cancelled call leaves by itself when the call returns; the
    run is over, so it takes no other job.
    """
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _worker(run: _Run[J, R], place: int, work: Callable[[Any, J], R], on_done: Any) -> None:
    binding = run.hosts[place].binding
    while (index := run.take(place)) is not None:
        try:
            result = work(binding, run.jobs[index])
        except Cancelled as stopped:  # a Stop (or the end of the run): the others stop too
            run.fail(stopped)
            return
        except BindingError as error:
            if run.cancel.is_set():  # the answer was cut by the stop: not the host's fault
                run.fail(Cancelled())
                return
            if run.on_failed is not None and isinstance(error, run.job_errors):
                if not run.give_up(index, error):  # the request's own fault: no other host would do better
                    return
                continue
            if not run.failed(index, place, error):
                return
            continue
        except BaseException as error:  # a bug, or a user callback that raised: stop everything
            run.fail(error)
            return
        complete = run.succeeded(index, place, result)
        if on_done is not None:
            try:
                on_done(index, result)
            except BaseException as error:  # a progress callback that raised (even KeyboardInterrupt)
                run.fail(error)
                return
        if complete:
            run.end()


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
