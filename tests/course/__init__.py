"""The four scripts of the lollms-client course (Module 11), with only their import lines changed.

``extract`` reads them out of the course's reStructuredText (``shared/seed``)
so that a test can check these copies against it.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["COURSE_DIR", "SCRIPTS", "convert", "extract", "seed_dir"]

COURSE_DIR = Path(__file__).resolve().parent
# In the order the course shows them.
SCRIPTS = (
    "client_setup_example.py",
    "sequential_summarize_example.py",
    "tti_example.py",
    "direct_binding_interaction.py",
)
_IMPORT = re.compile(r"^(\s*from\s+)lollms_client(\b[\w.]*\s+import\b.*)$")


def seed_dir() -> Path:
    """Where CI puts the course: ``shared/seed`` beside the repository."""
    return Path(__file__).resolve().parents[3] / "shared" / "seed"


def extract(rst: str) -> dict[str, str]:
    """The ``.. code-block:: python`` blocks of ``rst``, by the file name each names in its first line."""
    blocks: dict[str, str] = {}
    lines = rst.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != ".. code-block:: python":
            i += 1
            continue
        i += 1
        body: list[str] = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
            body.append(lines[i][4:] if lines[i].startswith("    ") else "")
            i += 1
        while body and not body[0].strip():
            body.pop(0)
        while body and not body[-1].strip():
            body.pop()
        name = body[0].lstrip("# ").strip() if body else ""
        blocks[name] = "\n".join(body) + "\n"
    return blocks


def convert(code: str) -> str:
    """``code`` with ``from lollms_client... import`` lines pointed at lollms_magics, nothing else changed."""
    return "\n".join(_IMPORT.sub(r"\1lollms_magics\2", line) for line in code.split("\n"))
