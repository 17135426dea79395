"""Thirty students on one saturated server: cells failed and answer times without and with the fallback chain.

    nice -n 10 python benchmarks/bench_fallback.py               # 30 students, 3 cells each, both runs
    nice -n 10 python benchmarks/bench_fallback.py -s 10 -c 2    # smaller

One loopback OpenAI-compatible server (tests/servers) writes four answers at
once (``--slots``) and answers 429 with ``Retry-After: 1`` to a fifth, as a
teacher's llama.cpp server started with ``--parallel 4`` behind a proxy that
sheds load would; each answer takes about ``--answer`` seconds. Each student
is a thread with its own :class:`Session`, asking its cells one after the
other; all start together. The run without a chain gives the binding's own
retries only (two, as by default); the run with one puts the embedded model
last in the chain (``Session(fallbacks=["llamacpp"])``): a cell whose server
says 429 after its retries goes to the embedded model, which waits a few
seconds if another thread is using it (one model in this process; in a real
class each student's kernel has its own), and while a backend was only busy
the chain asks the server again a second later, for up to two minutes.

Reported: cells failed, answers by backend, and per student the time of a
cell (median and 90th percentile over the students' median cell times).
Figures to write down, not assertions: a shared machine moves them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lollms_magics.core.session import Session  # noqa: E402
from lollms_magics.errors import LollmsMagicsError  # noqa: E402
from tests.servers import OpenAIServer  # noqa: E402

QUESTIONS = ("Name a planet.", "Give one use of a lever.", "What is a noun?", "Name a prime number.")


class BusyServer(OpenAIServer):
    """Writes ``slots`` answers at once and answers 429 (``Retry-After: 1``) beyond that."""

    def __init__(self, slots: int, answer_seconds: float) -> None:
        super().__init__(models=["class-model"])
        self.limit = slots
        self.active = 0
        self.refused = 0
        self.answered = 0
        self.request_delay = answer_seconds
        self._busy = threading.Lock()

    def chat(self, ex: Any) -> None:
        with self._busy:
            full = self.active >= self.limit
            if full:
                self.refused += 1
            else:
                self.active += 1
        if full:
            self.error(ex, 429, "Too many requests: all slots are busy", "rate_limit_error",
                       headers={"Retry-After": "1"})
            return
        try:
            super().chat(ex)
            with self._busy:
                self.answered += 1
        finally:
            with self._busy:
                self.active -= 1


def student(
    n: int, url: str, cells: int, chain: bool, start: threading.Event, out: list[dict[str, Any]]
) -> None:
    session = Session("openai", model="class-model", host=url + "/v1",
                      fallbacks=["llamacpp"] if chain else None)
    start.wait()
    for cell in range(cells):
        question = QUESTIONS[(n + cell) % len(QUESTIONS)]
        began = time.perf_counter()
        try:
            response = session.ask(question, n_predict=24, temperature=0, seed=n, history=False)
            _ = response.text
            by = response.binding
            failed = not response.done
        except LollmsMagicsError:
            by, failed = "-", True
        out.append({"student": n, "cell": cell, "seconds": time.perf_counter() - began, "by": by,
                    "failed": failed})
    session.close()


def run(students: int, cells: int, chain: bool, slots: int, answer: float) -> dict[str, Any]:
    server = BusyServer(slots, answer)
    server.start()
    out: list[dict[str, Any]] = []
    start = threading.Event()
    threads = [threading.Thread(target=student, args=(n, server.url, cells, chain, start, out))
               for n in range(students)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    start.set()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    server.stop()
    per_student = [statistics.median(r["seconds"] for r in out if r["student"] == n) for n in range(students)]
    per_student.sort()
    by: dict[str, int] = {}
    for r in out:
        if not r["failed"]:
            by[r["by"]] = by.get(r["by"], 0) + 1
    return {
        "chain": chain, "cells": len(out), "failed": sum(r["failed"] for r in out), "by": by,
        "median": statistics.median(per_student),
        "p90": per_student[min(len(per_student) - 1, int(0.9 * len(per_student)))],
        "worst": max(r["seconds"] for r in out), "wall": wall, "refused": server.refused,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-s", "--students", type=int, default=30)
    parser.add_argument("-c", "--cells", type=int, default=3)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--answer", type=float, default=1.0, help="seconds the server takes per answer")
    parser.add_argument("--only", choices=("without", "with"), help="one run only")
    args = parser.parse_args()
    from lollms_magics.bindings.llamacpp import LlamaCppBinding

    LlamaCppBinding().load()  # loaded before timing, as in a kernel that used it once
    runs = [c for c in (False, True) if args.only is None or c == (args.only == "with")]
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.students} students x "
          f"{args.cells} cells; server: {args.slots} at once, {args.answer} s an answer, 429 beyond\n")
    print("| chain | cells failed | answered by | cell time per student, median | p90 | slowest cell "
          "| wall | 429s sent |\n|---|--:|---|--:|--:|--:|--:|--:|")
    for chain in runs:
        r = run(args.students, args.cells, chain, args.slots, args.answer)
        by = ", ".join(f"{k} {v}" for k, v in sorted(r["by"].items()))
        print(f"| {'openai → llamacpp' if chain else 'none'} | {r['failed']} of {r['cells']} | {by} "
              f"| {r['median']:.1f} s | {r['p90']:.1f} s | {r['worst']:.1f} s | {r['wall']:.1f} s "
              f"| {r['refused']} |", flush=True)


if __name__ == "__main__":
    main()
