"""Tokens per second of the embedded model by llama.cpp thread count, to choose the default.

    python benchmarks/bench_threads.py               # 1 and 2 threads, 128 tokens, 5 rounds
    python benchmarks/bench_threads.py -t 1 2 4 -r 3

Each round runs every thread count once, in turn, on the same prompt at
temperature 0 (the model is reloaded when the count changes; loading is not
timed). Medians over the rounds are reported. Figures to write down, not
assertions: a shared machine moves them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lollms_magics.bindings.llamacpp import LlamaCppBinding  # noqa: E402

PROMPT = "Write a long story about a lighthouse keeper and a storm."


def speed(threads: int, n_predict: int) -> float:
    binding = LlamaCppBinding(n_threads=threads)
    binding.load().reset()  # loaded before timing; the prompt cache emptied
    start = time.perf_counter()
    response = binding.generate(PROMPT, n_predict=n_predict, temperature=0, seed=1)
    _ = response.text  # reads the whole answer
    elapsed = time.perf_counter() - start
    return (response.completion_tokens or 0) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-t", "--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("-n", "--n-predict", type=int, default=128)
    parser.add_argument("-r", "--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[int, list[float]] = {t: [] for t in args.threads}
    for _ in range(args.rounds):
        for threads in args.threads:
            results[threads].append(speed(threads, args.n_predict))
    print(f"{os.cpu_count()} CPUs, {args.n_predict} tokens, {args.rounds} rounds\n")
    print("| threads | median tok/s | min | max |\n|--:|--:|--:|--:|")
    for threads, speeds in results.items():
        print(f"| {threads} | {statistics.median(speeds):.1f} | {min(speeds):.1f} | {max(speeds):.1f} |")


if __name__ == "__main__":
    main()
