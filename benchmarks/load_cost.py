"""What ``%load_ext lollms_magics`` adds to an IPython start, in milliseconds.

Each measure runs in a fresh interpreter, so nothing is already imported:

* **start delta**: wall time of a process that creates IPython's
  ``InteractiveShell`` and runs ``%load_ext lollms_magics``, minus the same
  process without the ``%load_ext`` (median of the runs);
* **load_ext**: the ``%load_ext`` call alone, timed inside the process;
* **import**: ``import lollms_magics`` alone, timed inside the process.

Usage: ``python benchmarks/load_cost.py [RUNS]`` (default 7). It prints a
Markdown table row, to paste beside jupyter-ai-magics' 1.0-1.3 s.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

SHELL = (
    "import time\n"
    "from IPython.core.interactiveshell import InteractiveShell\n"
    "ip = InteractiveShell.instance()\n"
    "t = time.perf_counter()\n"
    "{load}\n"
    "print(time.perf_counter() - t)\n"
)
LOAD = "ip.run_line_magic('load_ext', 'lollms_magics')"
IMPORT = "import time\nt = time.perf_counter()\nimport lollms_magics\nprint(time.perf_counter() - t)\n"


def run(code: str) -> tuple[float, float]:
    """Wall time of a fresh interpreter running ``code``, and the number it prints."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, float(out.stdout.strip())


def main(runs: int = 7) -> None:
    with_load, without_load, load_ext, imports = [], [], [], []
    run(SHELL.format(load=LOAD))  # warm the disk cache and .pyc files first
    for _ in range(runs):
        wall, inner = run(SHELL.format(load=LOAD))
        with_load.append(wall)
        load_ext.append(inner)
        without_load.append(run(SHELL.format(load="pass"))[0])
        imports.append(run(IMPORT)[1])
    ms = 1000.0
    delta = (statistics.median(with_load) - statistics.median(without_load)) * ms
    print(f"runs: {runs}; IPython start without the extension: "
          f"{statistics.median(without_load) * ms:.0f} ms (median)")
    print("| package | start delta | `%load_ext` alone | `import` alone |")
    print("| --- | --- | --- | --- |")
    print(f"| lollms-magics | {delta:.0f} ms | {statistics.median(load_ext) * ms:.1f} ms "
          f"| {statistics.median(imports) * ms:.1f} ms |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
