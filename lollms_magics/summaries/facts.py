"""The key facts the notes recorded, gathered by the client for the end of the summary.

Each chunk's notes are asked to keep names, numbers, dates and places as
written. A small model's final call then rewrites all the notes into a few
paragraphs and drops most of them (SmolLM2-135M kept none of 40 in our
benchmark). So, when no ``format`` is asked for, the summary ends with a
"Key facts" list: the note lines that hold a number or a proper name, taken
in turns from every part of the document so none is left out, without
repeats, within a token budget. No model call is spent on it; with a
``format``, the model's text is the whole summary.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .quality import normalized

__all__ = ["HEADING", "key_facts"]

HEADING = "Key facts:"
# A digit, or a capitalized word after the first (a proper name rather than a sentence start).
_NUMBER = re.compile(r"\d")
_NAME = re.compile(r"(?<=[a-z,;:] )[A-Z][a-z]{2,}")


def _is_fact(line: str) -> bool:
    return bool(_NUMBER.search(line) or _NAME.search(line))


def key_facts(notes: list[str], budget: int, count: Callable[[str], int], written: str = "") -> list[str]:
    """Fact lines of ``notes`` (one bullet list per part), in turns across parts, within ``budget`` tokens.

    Lines whose words the summary already ``written`` holds are left out.
    """
    already = normalized(written)
    seen: set[str] = set()
    per_part: list[list[str]] = []
    for note in notes:
        lines = [ln.strip()[2:].strip() for ln in note.splitlines() if ln.strip().startswith("- ")]
        per_part.append([ln for ln in lines if _is_fact(ln)])
    facts: list[str] = []
    used = 0
    for depth in range(max((len(p) for p in per_part), default=0)):
        for part in per_part:
            if depth >= len(part):
                continue
            key = normalized(part[depth])
            if key in seen or key in already:
                continue
            cost = count(part[depth]) + 2
            if used + cost > budget:
                return facts
            seen.add(key)
            facts.append(part[depth])
            used += cost
    return facts
