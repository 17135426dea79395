"""Execute a notebook headless and print what each cell shows, as it completes.

    python notebooks/run.py notebooks/01_quickstart.ipynb [--save OUT.ipynb]

It uses nbclient (the engine behind ``jupyter execute``) with a fresh
IPython kernel, so the magics run exactly as in JupyterLab.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import nbformat
from nbclient import NotebookClient


def _text_of(output: Any) -> str:
    if output.get("output_type") == "stream":
        return str(output.get("text", ""))
    data = output.get("data", {})
    for mime in ("text/markdown", "text/plain"):
        if mime in data:
            return str(data[mime])
    if "image/png" in data:
        return "[image]"
    if output.get("output_type") == "error":
        return f"{output.get('ename')}: {output.get('evalue')}"
    return ""


class PrintingClient(NotebookClient):
    """A NotebookClient that prints each cell's source and outputs once it has run."""

    def __init__(self, nb: Any, **kw: Any) -> None:
        super().__init__(nb, on_cell_executed=self._show, **kw)

    def _show(self, cell: Any, **_: Any) -> None:
        if cell.cell_type != "code":
            return
        source = "\n".join(">>> " + line for line in cell.source.splitlines())
        print(f"\n\033[1m{source}\033[0m")
        for output in cell.outputs:
            text = _text_of(output)
            if output.get("output_type") == "stream":
                print(text, end="")  # a printed piece of a stream: keep it as written
            elif text.strip():
                print(text.rstrip())
        sys.stdout.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebook")
    ap.add_argument("--save", help="write the executed notebook there")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = ap.parse_args()
    nb = nbformat.read(args.notebook, as_version=4)
    PrintingClient(nb, timeout=args.timeout, kernel_name="python3").execute()
    if args.save:
        nbformat.write(nb, args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
