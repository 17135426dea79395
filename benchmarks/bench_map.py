"""Throughput and memory of one prompt over many items (``Session.map``, ``%%lollms --each``).

Throughput: 1,000 items against loopback OpenAI-compatible servers that take
a fixed time per request (``--delay``, 50 ms) and serve up to 64 at once,
each in a child process. For each concurrency N (requests in flight per
host) and for one and two hosts, the same items go through

* ``lollms``: ``Session.map`` (threads of the summaries' scheduler, the
  ``openai`` binding, the key check, no resume store: ``resume=False``);
* ``plain``: the leanest loop that does the same work, ``asyncio`` with one
  ``httpx.AsyncClient`` per host and N tasks per host taking items from one
  list and reading ``choices[0].message.content``;
* ``threads``: the same HTTP stack as the bindings (one ``httpx.Client`` per
  host, every connection kept) driven by N plain threads per host, the
  floor for a threaded client such as ``Session.map``;
* ``baseline`` (with ``--baseline CHECKOUT``): ``lollms`` run from another
  checkout of this project, in a child process, to compare two versions;
* ``litellm``: ``litellm.batch_completion(max_workers=N)`` (one host: it
  takes one ``api_base``), run by the Python of another environment given
  with ``--litellm PYTHON`` (litellm is not a dependency of this project).

Items per second, their share of the ideal ``hosts × N / delay``, and the
client's own CPU per item (``time.process_time``: the servers are other
processes) are printed as a Markdown table; with ``--repeat R`` each client
runs R times per point, interleaved with the others, and the table gives the
medians (on a shared machine one run can fall on a burst of others' work).

Memory (``--memory``): 100,000 short items through ``Session.map`` in a
fresh process against a server that answers at once, with the resume store
on (as a user runs it): the process's resident memory before the map, its
peak (``VmHWM``), and the time per item; plain threads on httpx beside it.

    python benchmarks/bench_map.py                          # throughput, N = 1 4 16 64
    python benchmarks/bench_map.py --litellm ../bench-venvs/litellm/bin/python
    python benchmarks/bench_map.py --memory                 # 100,000 items
    python benchmarks/bench_map.py --overhead --items 2000 --repeat 5 --clients lollms   # then httpx

Overhead (``--overhead``): the client's own CPU per item with no network and
no server, ``Session.map`` at concurrency 1 against ``httpx.MockTransport``,
or (``--clients httpx``) a bare ``httpx.Client`` loop doing the same posts:
what ``Session.map`` adds per item, measured apart from the machine's load
(the smallest of ``--repeat`` runs).

Results are figures to write down, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = "bench"
ANSWER = "positive"


# -- the server: a fixed time per request, up to `slots` at once ------------------------------------


async def _serve(delay: float, slots: int) -> None:
    gate = asyncio.Semaphore(slots)
    completion = json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
    }).encode()
    models = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]})

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                path = head.split(b" ", 2)[1]
                if path.startswith(b"/v1/models"):
                    body = models.encode()
                else:
                    async with gate:
                        if delay:
                            await asyncio.sleep(delay)
                    body = completion
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def start_server(delay: float, slots: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--delay", str(delay), "--slots", str(slots)],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError(f"the server did not start: {url!r}")
    return proc, url


# -- the clients --------------------------------------------------------------------------------------


REVIEW = "Label the sentiment of review {}: the product arrived on time and works."


def prompts(count: int) -> list[str]:
    return [REVIEW.format(i) for i in range(count)]


def run_lollms(urls: list[str], items: list[str], concurrency: int, resume: bool = False) -> dict[str, Any]:
    from lollms_magics import Session

    session = Session("openai", model=MODEL)
    session.map("{item}", items[: concurrency * len(urls)], hosts=urls, concurrency=concurrency,
                resume=False)  # warm-up: the connections are open before the clock starts
    cpu, wall = time.process_time(), time.perf_counter()
    result = session.map("{item}", items, hosts=urls, concurrency=concurrency, resume=resume)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    session.close()
    assert result.complete and result.results[0] == ANSWER, result.summary()
    return {"wall": wall, "cpu": cpu}


def run_plain(urls: list[str], items: list[str], concurrency: int) -> dict[str, Any]:
    import httpx

    async def main() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        clients = [httpx.AsyncClient(base_url=url, limits=limits, timeout=60) for url in urls]
        results: list[str | None] = [None] * len(items)

        async def run(todo: list[int]) -> None:
            async def worker(client: httpx.AsyncClient) -> None:
                while todo:
                    i = todo.pop()
                    messages = [{"role": "user", "content": items[i]}]
                    body = {"model": MODEL, "messages": messages, "stream": False}
                    response = await client.post("/v1/chat/completions", json=body)
                    results[i] = response.json()["choices"][0]["message"]["content"]

            await asyncio.gather(*(worker(c) for c in clients for _ in range(concurrency)))

        await run(list(range(min(len(items), concurrency * len(urls)))))  # warm-up
        cpu, wall = time.process_time(), time.perf_counter()
        await run(list(range(len(items)))[::-1])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        for client in clients:
            await client.aclose()
        assert all(r == ANSWER for r in results)
        return {"wall": wall, "cpu": cpu}

    return asyncio.run(main())


def run_threads(urls: list[str], items: list[str], concurrency: int) -> dict[str, Any]:
    """The same HTTP stack as the bindings (``httpx.Client``, one per host), N plain threads per host."""
    import threading

    import httpx

    # The bindings' limits (transport/client.py): with httpx's default of 20 idle connections,
    # 64 threads meet encode/httpcore#1110 (a request failing with EBADF, or hanging).
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    clients = [httpx.Client(base_url=url, timeout=60, limits=limits) for url in urls]
    results: list[str | None] = [None] * len(items)

    def run(todo: list[int]) -> None:
        def worker(client: httpx.Client) -> None:
            while True:
                try:
                    i = todo.pop()  # atomic: no lock needed
                except IndexError:
                    return
                body = {"model": MODEL, "messages": [{"role": "user", "content": items[i]}], "stream": False}
                results[i] = client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"][
                    "content"
                ]

        threads = [threading.Thread(target=worker, args=(c,)) for c in clients for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    run(list(range(min(len(items), concurrency * len(urls)))))  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    run(list(range(len(items)))[::-1])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for client in clients:
        client.close()
    assert all(r == ANSWER for r in results)
    return {"wall": wall, "cpu": cpu}


_BASELINE = """
import json, sys
root, urls, concurrency, count = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sys.path[:0] = [root + "/benchmarks", root]
import bench_map
print(json.dumps(bench_map.run_lollms(urls, bench_map.prompts(count), concurrency)))
"""


def run_baseline(root: str, urls: list[str], count: int, concurrency: int) -> dict[str, Any]:
    """``run_lollms`` with the ``lollms_magics`` of another checkout (``--baseline``), in a child process."""
    command = [sys.executable, "-c", _BASELINE, root, json.dumps(urls), str(concurrency), str(count)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


_LITELLM = """
import json, os, sys, time
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
import litellm
url, concurrency, count, REVIEW = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
items = [REVIEW.format(i) for i in range(count)]
def batch(chosen):
    messages = [[{"role": "user", "content": p}] for p in chosen]
    return litellm.batch_completion(model="openai/bench", messages=messages, api_base=url + "/v1",
                                    api_key="none", max_workers=concurrency)
batch(items[:concurrency])
cpu, wall = time.process_time(), time.perf_counter()
answers = batch(items)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
ok = sum(1 for a in answers if not isinstance(a, Exception) and a.choices[0].message.content == "positive")
print(json.dumps({"wall": wall, "cpu": cpu, "ok": ok}))
"""


def run_litellm(python: str, url: str, count: int, concurrency: int) -> dict[str, Any]:
    done = subprocess.run([python, "-c", _LITELLM, url, str(concurrency), str(count), REVIEW],
                          capture_output=True, text=True, check=True)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["ok"] != count:
        raise RuntimeError(f"litellm answered {figures['ok']} of {count}")
    return figures


# -- the two measures ------------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def throughput(args: argparse.Namespace) -> None:
    chosen = args.clients.split(",") if args.clients else ["lollms", "threads"]  # plain always runs
    servers = [start_server(args.delay, 64) for _ in range(2)]
    urls = [url for _, url in servers]
    items = prompts(args.items)
    print(f"{args.items} items, {args.delay * 1000:.0f} ms per request, servers serving up to 64 at once, "
          f"median of {args.repeat} run(s) per client, interleaved\n")
    print("| hosts | N | client | items/s | of ideal | vs plain | CPU ms/item | load avg |")
    print("|---|--:|---|--:|--:|--:|--:|--:|")
    try:
        for hosts in args.hosts:
            for concurrency in args.concurrency:
                ideal = hosts * concurrency / args.delay
                runs: dict[str, list[dict[str, Any]]] = {}
                loads: list[float] = []
                # Interleaved (plain, threads, lollms, plain, ...): a burst of load from other work
                # on a shared machine falls on every client, not on one.
                for _ in range(args.repeat):
                    runs.setdefault("plain", []).append(run_plain(urls[:hosts], items, concurrency))
                    if "threads" in chosen:
                        runs.setdefault("threads", []).append(run_threads(urls[:hosts], items, concurrency))
                    if "lollms" in chosen:
                        runs.setdefault("lollms", []).append(run_lollms(urls[:hosts], items, concurrency))
                    if args.baseline:
                        runs.setdefault("baseline", []).append(
                            run_baseline(args.baseline, urls[:hosts], len(items), concurrency))
                    if args.litellm and hosts == 1:
                        runs.setdefault("litellm", []).append(
                            run_litellm(args.litellm, urls[0], len(items), concurrency))
                    loads.append(os.getloadavg()[0])
                rates = {name: _median([len(items) / r["wall"] for r in rows]) for name, rows in runs.items()}
                load = f"{min(loads):.0f}–{max(loads):.0f}" if round(min(loads)) != round(max(loads)) \
                    else f"{loads[0]:.0f}"
                for name in ("lollms", "baseline", "plain", "threads", "litellm"):
                    if name not in runs:
                        continue
                    rate = rates[name]
                    cpu = _median([r["cpu"] for r in runs[name]]) / len(items) * 1000
                    print(f"| {hosts} | {concurrency} | {name} | {rate:.0f} | {rate / ideal:.0%} | "
                          f"{rate / rates['plain']:.0%} | {cpu:.2f} | {load} |", flush=True)
    finally:
        for proc, _ in servers:
            proc.kill()


def overhead(args: argparse.Namespace) -> None:
    """The client's own CPU per item with no network: ``Session.map`` and a bare httpx loop over
    ``httpx.MockTransport`` (one at a time), the smallest of ``--repeat`` runs of ``--items`` each."""
    import httpx

    body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": MODEL,
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9}}).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    items = prompts(args.items)
    if args.clients == "httpx":
        client = httpx.Client(base_url="http://bench.test/v1", transport=httpx.MockTransport(answer))

        def once() -> None:
            for item in items:
                sent = {"model": MODEL, "messages": [{"role": "user", "content": item}], "stream": False}
                assert client.post("/chat/completions", json=sent).json()["choices"][0]["message"]["content"]
    else:
        from lollms_magics import Session

        session = Session("openai", model=MODEL, host="http://bench.test/v1")
        session.binding_config["transport"] = httpx.MockTransport(answer)

        def once() -> None:
            assert session.map("{item}", items, resume=False).complete

    costs = []
    for _ in range(args.repeat):
        cpu = time.process_time()
        once()
        costs.append((time.process_time() - cpu) / len(items) * 1e6)
    print(json.dumps({"client": args.clients or "lollms", "min_us": min(costs), "median_us": _median(costs)}))


def _rss(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(client: str, url: str, count: int, concurrency: int) -> None:
    items = [f"item {i}" for i in range(count)]
    if client == "lollms":
        from lollms_magics import Session

        session = Session("openai", model=MODEL)
        session.map("Label {item}", items[:concurrency], host=url, concurrency=concurrency, resume=False)
        before = _rss("VmRSS")
        wall = time.perf_counter()
        result = session.map("Label {item}", items, host=url, concurrency=concurrency)
        wall = time.perf_counter() - wall
        assert result.complete, result.summary()
    else:
        prompts_ = [f"Label {i}" for i in items]
        run_threads([url], prompts_[:concurrency], concurrency)  # httpx imported, as lollms' warm-up does
        before = _rss("VmRSS")
        wall = time.perf_counter()
        run_threads([url], prompts_, concurrency)
        wall = time.perf_counter() - wall
    print(json.dumps({"before": before, "peak": _rss("VmHWM"), "wall": wall}))


def memory(args: argparse.Namespace) -> None:
    proc, url = start_server(0.0, 64)
    try:
        print(f"{args.count:,} short items against a server that answers at once, concurrency {args.n}\n")
        print("| client | RSS before MB | peak RSS MB | peak − before MB | µs per item |")
        print("|---|--:|--:|--:|--:|")
        for client in (args.clients or "lollms,threads").split(","):
            done = subprocess.run(
                [sys.executable, __file__, "--memory-child", client, "--url", url, "--count", str(args.count),
                 "-n", str(args.n)], capture_output=True, text=True, check=True,
            )
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"| {client} | {figures['before']:.0f} | {figures['peak']:.0f} | "
                  f"{figures['peak'] - figures['before']:.0f} | {figures['wall'] / args.count * 1e6:.0f} |",
                  flush=True)
    finally:
        proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--delay", type=float, default=0.05, help="seconds the server takes per request")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--hosts", type=int, nargs="+", choices=[1, 2], default=[1, 2], help="1, 2 or both")
    ap.add_argument("--litellm", metavar="PYTHON", help="a Python with litellm installed")
    ap.add_argument("--baseline", metavar="CHECKOUT",
                    help="another checkout of this project (git worktree, git archive) whose Session.map "
                         "runs beside, as the client 'baseline', to compare two versions in one run")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per client and point, interleaved; the table gives their medians")
    ap.add_argument("--memory", action="store_true", help="the memory measure instead")
    ap.add_argument("--overhead", action="store_true",
                    help="the client's CPU per item with no network (httpx.MockTransport), --clients lollms "
                         "or httpx")
    ap.add_argument("--count", type=int, default=100_000, help="items of the memory measure")
    ap.add_argument("-n", type=int, default=16, help="concurrency of the memory measure")
    ap.add_argument("--clients", help="clients by comma: of the memory measure (default lollms,threads), or "
                                      "besides plain in the throughput one (default lollms,threads)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--slots", type=int, default=64, help=argparse.SUPPRESS)
    ap.add_argument("--memory-child", choices=["lollms", "threads"], help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(_serve(args.delay, args.slots))
    elif args.memory_child:
        memory_child(args.memory_child, args.url, args.count, args.n)
    elif args.memory:
        memory(args)
    elif args.overhead:
        overhead(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
