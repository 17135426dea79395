"""Dropping what a note copied from its part, before the notes are merged.

Small models asked for notes often copy their part back: SmolLM2-135M copied
30 of 54 parts on the benchmark document (``benchmarks/README.md``). A copy
is not a note: it fills the merging and final calls with the part's opening
sentences, crowding out the notes of the other parts. Each note point is
compared with its part, word by word: the words that belong to a run of
:data:`RUN` or more consecutive words of the part are copied. A point that
is copied for half its words or more is cut to its new words when they still make a statement
of a few words, and dropped otherwise. A point that quotes a short phrase of
the text (a name, a title) keeps it.

The copied sentences are not lost for the key facts: those are taken from
the document itself (:mod:`.salient`), spelled as it spells them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["RUN", "PartWords", "cut_copies"]

RUN = 6  # consecutive words shared with the part make a copy
_MOSTLY = 0.5  # a point with this share of copied words or more is cut
_MIN_NEW = 4  # what is left of a cut point must have at least this many words
# Words, and the punctuation that ends a sentence or a clause: a run never spans a sentence's end
# that the note does not share.
_TOKEN = re.compile(r"\w+(?:['’-]\w+)*|[.!?;:,]")


def _keys(words: list[str]) -> list[str]:
    return [w.lower() for w in words]


class PartWords:
    """The word runs of one part, to tell which words of a note were copied from it."""

    def __init__(self, part: str) -> None:
        words = _keys(_TOKEN.findall(part))
        self.runs = {tuple(words[i : i + RUN]) for i in range(len(words) - RUN + 1)}
        self.joined = f" {' '.join(words)} "

    def copied(self, words: list[str]) -> list[bool]:
        """For each of ``words``: True when it lies in a run of :data:`RUN` words of the part
        (a point shorter than that: when the whole point is in the part)."""
        keys = _keys(words)
        if len(keys) < RUN:
            return [f" {' '.join(keys)} " in self.joined] * len(keys)
        marks = [False] * len(keys)
        for i in range(len(keys) - RUN + 1):
            if tuple(keys[i : i + RUN]) in self.runs:
                marks[i : i + RUN] = [True] * RUN
        return marks


def _new_content(point: str, part: PartWords) -> str | None:
    """``point`` as it is, cut to its new words when mostly copied, or None when nothing new is left."""
    tokens = list(_TOKEN.finditer(point))
    marks = part.copied([t.group() for t in tokens])
    words = [m for t, m in zip(tokens, marks, strict=True) if t.group()[0].isalnum() or t.group()[0] == "_"]
    if not words or sum(words) < _MOSTLY * len(words):
        return point
    if len(words) - sum(words) < _MIN_NEW:
        return None
    # The stretches of the point between its copied runs, with their own spacing and punctuation.
    stretches: list[str] = []
    start: int | None = None
    for token, copied in [*zip(tokens, marks, strict=True), (None, True)]:
        if not copied and token is not None and start is None:
            start = token.start()
        elif copied and start is not None:
            end = token.start() if token is not None else len(point)
            stretches.append(point[start:end].strip(" ,;:-"))
            start = None
    text = " ".join(s for s in stretches if s)
    return text[0].upper() + text[1:] if text else None


def cut_copies(points: Iterable[str], part: str) -> list[str]:
    """``points`` with what they copied from ``part`` removed (see the module's docstring)."""
    words = PartWords(part)
    kept: list[str] = []
    for point in points:
        cut = _new_content(point, words)
        if cut is not None:
            kept.append(cut)
    return kept
