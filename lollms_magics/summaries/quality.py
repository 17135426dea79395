"""Telling a usable answer from a broken one, and keeping only new key points.

Small models loop ("the the the", one sentence again and again) or copy the
prompt back. Such an answer must not be carried into the memory, where every
later call would repeat it (what sank lollms-client's summaries). Three
tools:

* :class:`RunawayGuard` watches a streamed answer and says stop as soon as
  its tail repeats text it already wrote, so a loop costs a few dozen tokens
  instead of the whole ``n_predict``;
* :func:`key_points` turns an answer into bullet lines, dropping repeats,
  lines copied from the prompt's instructions and lines already known;
* :func:`is_degenerate` says whether what is left is worth keeping.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["RunawayGuard", "is_degenerate", "key_points", "normalized"]

_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)])\s+")
_NON_WORD = re.compile(r"[^\w]+")
# The guard looks for a repeat of the last _WINDOW characters, every _EVERY characters.
_WINDOW = 80
_EVERY = 40
_MIN_TEXT = 240
_LINE_WINDOW = 40  # a line whose last 40 characters already appear in it loops


class RunawayGuard:
    """Feed it the pieces of a streamed answer; :meth:`feed` returns True when it loops."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._next_check = _MIN_TEXT
        self.tripped = False

    def feed(self, piece: str) -> bool:
        self._parts.append(piece)
        self._length += len(piece)
        if self._length < self._next_check:
            return False
        self._next_check = self._length + _EVERY
        text = "".join(self._parts)
        self._parts = [text]
        tail = text[-_WINDOW:]
        # A loop: the last 80 characters already appear, whole, earlier on.
        looping = len(set(tail)) > 3 and tail in text[:-_WINDOW]
        # "........" or "aaaa": hardly any distinct characters in the last stretch.
        if looping or len(set(text[-_MIN_TEXT:])) <= 3:
            self.tripped = True
        return self.tripped

    def text_before_loop(self) -> str:
        """The answer up to the end of the first copy of what repeats, cut at a sentence or line end.

        A loop that started mid-sentence ("the boats came back and the boats
        came back and...") is dropped with its sentence.
        """
        text = "".join(self._parts)
        if not self.tripped:
            return text
        tail = text[-_WINDOW:]
        first = max(0, text.find(tail))
        second = text.find(tail, first + 1)
        end = first + (second - first if second > first else len(tail))
        cut = max(text.rfind("\n", 0, end), text.rfind(". ", 0, end) + 1)
        return text[: max(0, cut)].rstrip()


def normalized(line: str) -> str:
    """``line`` lowercased with punctuation and spacing folded, for comparing key points."""
    return _NON_WORD.sub(" ", line.lower()).strip()


def key_points(answer: str, known: Iterable[str] = (), echo: Iterable[str] = ()) -> list[str]:
    """The bullet lines of ``answer`` that are new.

    Lines are stripped of their bullet marks; a line seen before in the same
    answer, present in ``known`` (already normalized), or copied from the
    prompt's ``echo`` lines is dropped, as are lines of fewer than 3 words
    and lines that repeat themselves (a loop cut by the length limit before
    the :class:`RunawayGuard` saw it). A paragraph answer without bullets
    gives its sentences.
    """
    seen = set(known)
    echoed = {normalized(e) for e in echo}
    lines = [ln for ln in answer.splitlines() if ln.strip()]
    if not any(_BULLET.match(ln) for ln in lines):
        lines = [s for ln in lines for s in re.split(r"(?<=[.!?])\s+", ln)]
    points: list[str] = []
    for line in lines:
        text = _BULLET.sub("", line).strip().strip("*").strip()
        key = normalized(text)
        if len(key.split()) < 3 or key in seen or key in echoed or _loops(key):
            continue
        seen.add(key)
        points.append(text)
    return points


def _loops(key: str) -> bool:
    """True when the last stretch of a (normalized) line already appears earlier in it."""
    return len(key) >= 2 * _LINE_WINDOW and key[-_LINE_WINDOW:] in key[:-_LINE_WINDOW]


def is_degenerate(answer: str, points: list[str]) -> bool:
    """True when ``answer`` has nothing worth carrying forward.

    That is: no key point survived, or the answer is mostly the same few
    words over and over (fewer than a quarter of its word 3-grams distinct).
    """
    if not points:
        return True
    words = answer.lower().split()
    if len(words) < 24:
        return False
    grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return len(set(grams)) < len(grams) / 4
