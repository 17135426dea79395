"""Save a replayed notebook's outputs, so that the tests compare them.

    python notebooks/outputs.py notebooks/03_summarize.ipynb [more.ipynb ...]

A notebook that replays its answers from its ``.replay.jsonl`` shows the same
thing at every run. This runs it headless in its own folder (as Jupyter
does), strictly: its replay cell loses ``--fallback`` (an answer missing from
the file fails the cell instead of asking the embedded model) and replays at
``--speed 0``. It writes the outputs into the notebook; then
``tests/test_notebook_outputs.py`` runs it the same way and compares what
each code cell shows with what was saved, times and speeds aside
(:data:`SANITIZE`), so that a changed answer fails.

nbval (which runs the other notebooks) is not used for these: it keeps the
first display of a streamed answer and drops the ``update_display_data``
messages that complete it, so it would compare ``A ▍`` with the answer.

Run it again after recording a notebook's replay file (notebooks/record.py).
"""

from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent

# The notebooks that replay every answer from their file.
REPLAYED = [
    "02_bindings_streaming_images.ipynb",
    "03_summarize.ipynb",
    "04_text_to_image.ipynb",
    "06_python_api.ipynb",
    "07_data.ipynb",
    "08_documents.ipynb",
    "09_tools.ipynb",
    "fr/11_orchestration_lollms_client.ipynb",
]

# What changes from one run to the next: times, speeds and rates.
SANITIZE = [
    (re.compile(r"\d[\d,]*(?:\.\d+)? ?(?:tok/s|items/s|it/s|s\b|ms\b)"), "<time>"),
    (re.compile(r"\b\d+:\d\d(?::\d\d)?\b"), "<clock>"),
]


def strict(nb: Any) -> Any:
    """A copy of ``nb`` whose replay cell neither falls back to a live model nor waits."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.lstrip().startswith("%load_ext"):
            lines = []
            for line in cell.source.splitlines():
                if line.startswith("%lollms replay"):
                    line = re.sub(r"\s--fallback\b", "", line)
                    line = re.sub(r"\s--speed\s+\S+", "", line) + " --speed 0"
                lines.append(line)
            cell.source = "\n".join(lines)
    return nb


def execute(path: Path, timeout: int = 600) -> Any:
    """Run the notebook at ``path`` strictly (see :func:`strict`) in its folder; the executed copy."""
    nb = strict(nbformat.read(path, as_version=4))
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return merge_streams(nb)


def merge_streams(nb: Any) -> Any:
    """Join each run of outputs of one stream into one output, as JupyterLab does; ``nb`` itself.

    A print() writes its pieces apart and a busy kernel may send them as two
    messages; nbclient keeps one output per message (its ``coalesce_streams``
    also joins stdout and stderr that were apart, changing their order).
    """
    for cell in nb.cells:
        merged: list[Any] = []
        for output in cell.get("outputs", []):
            last = merged[-1] if merged else None
            if (output.get("output_type") == "stream" and last is not None
                    and last.get("output_type") == "stream" and last.get("name") == output.get("name")):
                last["text"] = str(last.get("text", "")) + str(output.get("text", ""))
                continue
            merged.append(output)
        if "outputs" in cell:
            cell.outputs = merged
    return nb


def shown(cell: Any) -> list[str]:
    """What a code cell shows as text, one entry per output, times and speeds masked.

    Pictures and widgets are named by their kind only (their bytes depend on
    the image library's version; a widget's view is live state, not a record).
    """
    seen: list[str] = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            text = str(output.get("text", ""))
            if seen and seen[-1].startswith(f"[{output.get('name')}]"):
                seen[-1] += text  # a stream cut in several outputs reads as one
                continue
            seen.append(f"[{output.get('name')}]" + text)
        elif kind == "error":
            seen.append(f"[error] {output.get('ename')}: {output.get('evalue')}")
        else:
            data = output.get("data", {})
            text = data.get("text/markdown") or data.get("text/plain") or ""
            extra = sorted(m for m in data if m.startswith(("image/", "application/vnd.jupyter.widget")))
            seen.append(f"[{kind}] {' '.join(extra)} {text}".strip())
    masked = []
    for text in seen:
        for pattern, mask in SANITIZE:
            text = pattern.sub(mask, text)
        masked.append(text)
    return masked


def save(path: Path, timeout: int = 600) -> int:
    """Execute ``path`` and write its outputs into it; the count of code cells."""
    original = nbformat.read(path, as_version=4)
    executed = execute(path, timeout)
    count = 0
    for cell, ran in zip(original.cells, executed.cells, strict=True):
        if cell.cell_type == "code":
            cell.outputs = ran.outputs
            cell.execution_count = ran.execution_count
            cell.metadata.pop("execution", None)  # timestamps: noise in every diff
            count += 1
    nbformat.write(original, path)
    return count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every replayed notebook")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = ap.parse_args()
    for path in args.notebooks or [HERE / name for name in REPLAYED]:
        print(f"{path}: the outputs of {save(path.resolve(), args.timeout)} code cell(s) saved")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
