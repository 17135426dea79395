"""The sentences of a part that carry its own names and numbers, found without the model.

A small model's notes lose what matters most in a summary: the names,
numbers and dates. Those are cheap to find in the text itself, so the key
facts (:mod:`.facts`) also draw on the document's own sentences: in each
part, the sentences holding a number or a name (a capitalized word that does
not start the sentence), ranked by how particular those marks are to this
place of the document (a name that occurs once in the whole text weighs 1, one
that occurs 50 times weighs 1/50). Headings and lines too short or too long
to be a statement are left out by :mod:`.facts`' own checks.
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["MarkCounts", "salient_sentences"]

_HEADING = re.compile(r"^\s*#")
_SENTENCE = re.compile(r"(?<=[.!?…])[\"'”»)]?\s+(?=[\"'“«(]?[A-Z0-9À-Ý])")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


def _marks(sentence: str) -> set[str]:
    """The numbers and names of ``sentence`` (a capitalized word after its first word)."""
    names = {w for w in _WORD.findall(sentence)[1:] if w[0].isupper() and len(w) > 1}
    return names | set(_NUMBER.findall(sentence))


class MarkCounts:
    """How often each number and capitalized word occurs in the whole document."""

    def __init__(self, document: str) -> None:
        self.counts: Counter[str] = Counter(_NUMBER.findall(document))
        self.counts.update(w for w in _WORD.findall(document) if w[0].isupper())

    def weight(self, marks: set[str]) -> float:
        return sum(1 / max(1, self.counts[m]) for m in marks)


def _sentences(part: str) -> list[str]:
    found: list[str] = []
    for block in re.split(r"\n\s*\n", part):
        if _HEADING.match(block):
            continue
        text = " ".join(block.split())
        found.extend(s.strip() for s in _SENTENCE.split(text) if s.strip())
    return found


def salient_sentences(part: str, counts: MarkCounts, limit: int = 3) -> list[str]:
    """Up to ``limit`` sentences of ``part`` with the most particular names and numbers, best first."""
    scored = []
    for position, sentence in enumerate(_sentences(part)):
        marks = _marks(sentence)
        if marks:
            scored.append((-counts.weight(marks), position, sentence))
    return [s for _, _, s in sorted(scored)[:limit]]
