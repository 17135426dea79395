"""Record ``lesson.replay.jsonl`` again from the Ollama stand-in (run: python tests/replayed/record.py).

The lesson names a host where nothing listens (a replay needs none); the
recording runs a copy whose host is the stand-in's, started on a free port.
The key of an answer holds no host, so the file replays for the lesson as is.
After recording, the figures and dates that tests/test_replay_check.py
expects (footer, ``recorded``) change: update them there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.servers import OllamaServer  # noqa: E402

REPLIES = {
    "Name a river in France.": "The **Seine** flows through Paris.",
    "Name a mountain in Italy.": "Monte Rosa",
    "One fact about Paris.": "Paris has been the capital of France since 987.",
    "One fact about Rome.": "Rome has a country inside it: the Vatican.",
}


def main() -> int:
    server = OllamaServer(models=["tiny"])
    server.reply = lambda prompt: REPLIES.get(prompt.strip(), "I do not know.")
    server.start()
    tape = HERE / "lesson.replay.jsonl"
    tape.unlink(missing_ok=True)
    nb = nbformat.read(HERE / "lesson.ipynb", as_version=4)
    for cell in nb.cells:
        cell.source = cell.source.replace("http://127.0.0.1:9", server.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOLLMS_MAGICS_")}
    env["LOLLMS_MAGICS_RECORD"] = str(tape)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(HERE)}}).execute(env=env)
    finally:
        server.stop()
    print(f"{tape}: {len(tape.read_text(encoding='utf-8').splitlines()) - 1} answers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
