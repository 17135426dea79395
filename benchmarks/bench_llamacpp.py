"""Tokens per second of the ``llamacpp`` binding against llama-cpp-python called directly.

Both sides use the same loaded ``Llama`` (the binding's), the same prompt,
``n_predict``, temperature 0 and seed, and stream with
``create_chat_completion(stream=True)``. Each round runs both, alternating
which goes first; medians over the rounds are reported, with the overhead of
the binding as a percentage of the direct speed (within each round, then the
median).

    python benchmarks/bench_llamacpp.py               # 128 tokens, 7 rounds
    python benchmarks/bench_llamacpp.py -n 64 -r 3

Speeds are wall-clock tokens per second over the whole answer (prompt
evaluation included, identical on both sides since the prompt prefix is
cached alike). Results are figures to write down, not assertions.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lollms_magics.bindings.llamacpp import LlamaCppBinding  # noqa: E402

PROMPT = "Write a long story about a lighthouse keeper and a storm."


def run_direct(llama: Any, n_predict: int, seed: int) -> tuple[int, float]:
    messages = [{"role": "user", "content": PROMPT}]
    start = time.perf_counter()
    count = 0
    for chunk in llama.create_chat_completion(
        messages, stream=True, max_tokens=n_predict, temperature=0.0, seed=seed
    ):
        if chunk["choices"][0]["delta"].get("content"):
            count += 1
    return count, time.perf_counter() - start


def run_binding(binding: Any, n_predict: int, seed: int) -> tuple[int, float]:
    start = time.perf_counter()
    count = 0
    for _ in binding.generate(PROMPT, n_predict=n_predict, temperature=0, seed=seed):
        count += 1
    return count, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--n-predict", type=int, default=128)
    parser.add_argument("-r", "--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    args = parser.parse_args()

    start = time.perf_counter()
    binding = LlamaCppBinding(n_threads=args.threads)
    llama = binding.load()
    load_time = time.perf_counter() - start

    # Warm up both paths once (page cache, prompt prefix, allocator).
    run_direct(llama, 8, args.seed)
    run_binding(binding, 8, args.seed)

    direct: list[float] = []
    through: list[float] = []
    overheads: list[float] = []
    tokens: set[int] = set()
    for round_ in range(args.rounds):
        order = ("direct", "binding") if round_ % 2 == 0 else ("binding", "direct")
        speeds: dict[str, float] = {}
        for side in order:
            if side == "direct":
                count, elapsed = run_direct(llama, args.n_predict, args.seed)
            else:
                count, elapsed = run_binding(binding, args.n_predict, args.seed)
            tokens.add(count)
            speeds[side] = count / elapsed
        direct.append(speeds["direct"])
        through.append(speeds["binding"])
        overheads.append((speeds["direct"] - speeds["binding"]) / speeds["direct"] * 100)

    d, b = statistics.median(direct), statistics.median(through)
    print(
        f"SmolLM2-135M-Instruct Q4_1, {args.rounds} rounds, tokens per answer "
        f"{sorted(tokens)}, n_threads={llama.n_threads}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, first load {load_time:.2f} s\n"
    )
    print("| path | median tok/s | min | max |")
    print("|---|---:|---:|---:|")
    print(f"| llama-cpp-python direct | {d:.1f} | {min(direct):.1f} | {max(direct):.1f} |")
    print(f"| `llamacpp` binding | {b:.1f} | {min(through):.1f} | {max(through):.1f} |")
    print(
        f"\nbinding overhead: median {statistics.median(overheads):+.2f}% "
        f"(per round: {', '.join(f'{o:+.1f}' for o in overheads)}); target < 5%"
    )


if __name__ == "__main__":
    main()
