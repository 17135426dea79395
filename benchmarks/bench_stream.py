"""Streaming overhead of the bindings against a plain httpx reader, on one stream.

For each protocol a loopback server (``tests/servers``) runs in a child
process and streams N one-token events (model ``count-N``). In the same
round, this process reads that stream twice or more: once with the leanest
httpx reader that still does the protocol's work (``iter_lines`` +
``json.loads`` for SSE and NDJSON, ``iter_text`` for LoLLMs' raw text), and
once through each binding. Rounds alternate the order; medians are reported,
with the ratio to the plain reader taken within each round.

    python benchmarks/bench_stream.py            # N=20000, 5 rounds
    python benchmarks/bench_stream.py -n 5000 -r 3

CPU is the client's own (``time.process_time``: the server is another
process). Results are figures to write down, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lollms_magics import get_binding  # noqa: E402
from tests.servers import LOLLMS_KEY  # noqa: E402


def start_server(kind: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.servers", kind, "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the server logs each client that hangs up
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError(f"server {kind} did not start: {url!r}")
    return proc, url


# -- plain readers: the floor each binding is compared with -----------------


def plain_openai(client: httpx.Client, url: str, n: int, lollms_v1: bool = False) -> int:
    # The same request as the binding's, so both read the same stream (with
    # include_usage, OpenAI-style servers add "usage": null to every chunk).
    body: dict[str, object] = {
        "model": f"ollama/count-{n}" if lollms_v1 else f"count-{n}",
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
    }
    if not lollms_v1:  # the LoLLMs binding does not ask for usage
        body["stream_options"] = {"include_usage": True}
    headers = {"Authorization": f"Bearer {LOLLMS_KEY}"} if lollms_v1 else {}
    count = 0
    with client.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                payload = line[6:]
                if payload == "[DONE]":
                    break
                event = json.loads(payload)
                choices = event.get("choices")
                if choices and choices[0]["delta"].get("content"):
                    count += 1
    return count


def plain_ollama(client: httpx.Client, url: str, n: int) -> int:
    body = {"model": f"count-{n}", "messages": [{"role": "user", "content": "go"}]}
    count = 0
    with client.stream("POST", url + "/api/chat", json=body) as r:
        for line in r.iter_lines():
            if line:
                event = json.loads(line)
                if event["message"].get("content"):
                    count += 1
    return count


def plain_lollms(client: httpx.Client, url: str, n: int) -> int:
    body = {"prompt": "go", "model_name": f"count-{n}", "stream": True}
    count = 0
    with client.stream("POST", url + "/lollms_generate", json=body) as r:
        for _ in r.iter_text():
            count += 1
    return count


def plain_lollms_v1(client: httpx.Client, url: str, n: int) -> int:
    return plain_openai(client, url, n, lollms_v1=True)


PLAIN: dict[str, Callable[[httpx.Client, str, int], int]] = {
    "openai": plain_openai,
    "ollama": plain_ollama,
    "lollms_webui": plain_lollms,
    "lollms": plain_lollms_v1,
}
BINDING = {"openai": "openai", "ollama": "ollama", "lollms_webui": "lollms", "lollms": "lollms"}


def measure(fn: Callable[[], int]) -> tuple[float, float, int]:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    count = fn()
    return time.perf_counter() - wall0, time.process_time() - cpu0, count


def run_protocol(kind: str, n: int, rounds: int) -> list[dict[str, object]]:
    """Median figures of the plain reader and the binding on one protocol."""
    plain = PLAIN[kind]
    proc, url = start_server(kind)
    client = httpx.Client(timeout=60)
    extra: dict[str, str] = {}
    model = f"count-{n}"
    if kind == "lollms_webui":
        extra = {"protocol": "webui"}
    elif kind == "lollms":
        extra, model = {"protocol": "v1", "api_key": LOLLMS_KEY}, f"ollama/count-{n}"
    binding = get_binding(BINDING[kind], host=url, model=model, **extra)
    readers: dict[str, Callable[[], int]] = {
        "plain httpx": lambda: plain(client, url, n),
        "binding": lambda: sum(1 for _ in binding.generate("go")),
    }
    try:
        for fn in readers.values():  # warm both paths (connections, imports)
            fn()
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in readers}
        ratios: list[tuple[float, float]] = []
        for i in range(rounds):
            order = list(readers) if i % 2 == 0 else list(reversed(readers))
            got = {}
            for name in order:
                wall, cpu, count = measure(readers[name])
                if count < n * 0.99:  # the raw reader may merge pieces; bindings must not lose any
                    raise RuntimeError(f"{kind}/{name} saw {count} pieces of {n}")
                got[name] = (wall, cpu)
                results[name].append((wall, cpu))
            (plain_wall, plain_cpu), (ours_wall, ours_cpu) = got["plain httpx"], got["binding"]
            ratios.append((plain_wall / ours_wall, ours_cpu / plain_cpu))  # rate ratio = inverse wall
    finally:
        binding.close()
        client.close()
        proc.terminate()
        proc.wait(5)
    rows: list[dict[str, object]] = []
    for name, samples in results.items():
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        row: dict[str, object] = {
            "protocol": kind,
            "reader": name if name != "binding" else f"binding {BINDING[kind]}",
            "tok/s": round(n / wall),
            "cpu_s_per_10k": round(cpu / n * 10_000, 4),
        }
        if name == "binding":
            row["rate_vs_plain"] = round(statistics.median(r[0] for r in ratios), 3)
            row["cpu_vs_plain"] = round(statistics.median(r[1] for r in ratios), 3)
        rows.append(row)
    return rows


def run(n: int, rounds: int, kinds: list[str]) -> list[dict[str, object]]:
    return [row for kind in kinds for row in run_protocol(kind, n, rounds)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20_000, help="tokens per stream")
    ap.add_argument("-r", "--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("protocols", nargs="*", help=f"some of {', '.join(PLAIN)} (default: all)")
    args = ap.parse_args()
    unknown = set(args.protocols) - set(PLAIN)
    if unknown:
        ap.error(f"unknown protocol(s): {', '.join(sorted(unknown))}")
    rows = run(args.n, args.rounds, args.protocols or list(PLAIN))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"N = {args.n} tokens per stream, {args.rounds} rounds, medians; "
          f"Python {sys.version.split()[0]}, httpx {httpx.__version__}, {os.cpu_count()} CPUs\n")
    print("| protocol | reader | tok/s | CPU s / 10k tok | rate vs plain | CPU vs plain |")
    print("|---|---|--:|--:|--:|--:|")
    for r in rows:
        rate = f"{r['rate_vs_plain']:.0%}" if "rate_vs_plain" in r else "100%"
        cpu = f"{r['cpu_vs_plain']:.2f}×" if "cpu_vs_plain" in r else "1.00×"
        print(f"| {r['protocol']} | {r['reader']} | {r['tok/s']} | {r['cpu_s_per_10k']} | {rate} | {cpu} |")


if __name__ == "__main__":
    main()
