"""Run notebooks in fresh kernels and report each kernel's peak memory (run by binder/check.py).

    python binder/run_measured.py [--limit-mb 1500] NOTEBOOK...

Prints one line per notebook: seconds, the kernel's peak resident memory
(``VmHWM``) in MB, and the result. Exits 1 when a notebook fails or a kernel
goes over the limit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

_PEAK_CELL = (
    "for _line in open('/proc/self/status'):\n"
    "    if _line.startswith('VmHWM'):\n"
    "        print('PEAK_KB', _line.split()[1])\n"
)


def run(path: Path) -> tuple[float, float | None, str]:
    """(seconds, peak MB, '' or the error) for one notebook."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_PEAK_CELL))
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as exc:
        return time.perf_counter() - start, None, str(exc).strip().splitlines()[-1]
    seconds = time.perf_counter() - start
    for output in nb.cells[-1].outputs:
        for line in str(output.get("text", "")).splitlines():
            if line.startswith("PEAK_KB"):
                return seconds, int(line.split()[1]) / 1024, ""
    return seconds, None, "the kernel's peak memory could not be read"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--limit-mb", type=float, default=1500.0)
    args = ap.parse_args()
    failed = False
    print(f"{'notebook':<52} {'seconds':>8} {'peak MB':>8}  result")
    for path in args.notebooks:
        seconds, peak, error = run(path.resolve())
        over = peak is not None and peak > args.limit_mb
        failed = failed or bool(error) or over
        result = error or (f"over {args.limit_mb:.0f} MB" if over else "ok")
        shown = f"{peak:8.0f}" if peak is not None else f"{'-':>8}"
        print(f"{path!s:<52} {seconds:8.1f} {shown}  {result}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
