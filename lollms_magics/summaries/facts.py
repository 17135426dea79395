"""The key facts of every part, gathered by the client for the end of the summary.

Each chunk's notes are asked to keep names, numbers, dates and places as
written. A small model's final call then rewrites all the notes into a few
paragraphs and drops most of them (SmolLM2-135M kept none of 40 in our
benchmark). So, when no ``format`` is asked for, the summary ends with a
"Key facts" list, made without a model call from each part's notes and from
the part's own sentences that carry its most particular names and numbers
(:mod:`.salient`; a small model's notes often hold none). With a
``format``, the model's text is the whole summary.

A small model's notes are not all facts: on a 25,000-word document, 46 of
62 such lines were headings copied from the document, labels ("Budget:")
and the prompt's own framing ("Part 14 of 40 of the document:"). A line is
kept when it

* states something: a sentence of at least four words, with a verb's shape
  or a sentence's end, not a heading, not a label, not the prompt echoed,
  not a piece of a sentence (a small model copies the document's wrapped
  lines: one starting in lower case or ending on "the" is a piece);
* holds a number or a proper name;
* spells them as the document does: a number written ``4200`` where the
  document has ``4,200`` is rewritten, a name in another case or one letter
  off is rewritten, and a line whose number or name the document does not
  hold at all (the model made it up) is dropped;
* says something no line already kept says (case, spacing and punctuation
  aside, or nearly the same words).

The lines are taken from every part in proportion to its length: first one
line of each part, then a second of each, and so on (a part twice as long
takes its second line in the first round), the parts of each round visited
in an order that spreads any prefix over the whole document (first, middle,
quarters...). So when the budget holds fewer lines than there are parts,
they still come from the beginning, the middle and the end: on a 391,570-
character document of 154 parts, the lines were once the first parts' only,
the first 202 of 2,000 paragraphs, because they were taken in the parts'
order until the budget ran out. They are shown in the document's order.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator

from .prompts import DEFAULT_INSTRUCTION, FACT_RULE
from .quality import normalized
from .salient import MarkCounts, salient_sentences

__all__ = ["HEADING", "key_facts"]

HEADING = "Key facts:"
_MIN_WORDS = 4
# A line longer than this is a passage the model copied, not a fact.
_MAX_WORDS = 60
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_THOUSANDS = re.compile(r"\d{1,3}(?:[.,\u00a0\u202f ]\d{3})+")
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['’-][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"[.!?…][\"'”»)]?$")
# The prompt's own framing, which a small model writes back as if it were a note.
_FRAMING = re.compile(
    r"\bpart \d+(?: of \d+)?\b|^(?:here (?:are|is)|these are|notes? on|summary of)\b|"
    r"\b(?:key points?|bullet points?|the (?:text|document) (?:says|mentions|discusses|describes))\b",
    re.IGNORECASE,
)
_ECHOES = tuple(normalized(s) for s in (DEFAULT_INSTRUCTION, *FACT_RULE.split(". ")))


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that make a line a statement rather than a title, in English and French
# (the languages of the documents and course this package ships with).
_VERBS = _words(
    "is are was were be been being has have had will would can could may might must shall should "
    "does did do est sont était étaient sera seront fut ont avait avaient a été"
)
_VERB_ENDINGS = ("ed", "es", "ait", "aient")
# Before a noun, a word ending in -s is a plural ("of ships"); after one, likely a verb ("the ferry runs").
_BEFORE_NOUNS = _words("of the a an and or to in on for with by at des les de du et")
# A line ending with one of these was cut mid-sentence (a small model copies wrapped lines).
_DANGLING = _BEFORE_NOUNS | _words(
    "between called that which who whose their its his her as from into than but so because "
    "le la un une que qui dans sur par pour"
)


def _verbish(words: list[str]) -> bool:
    """True when a lowercase word of ``words`` looks like a verb (an auxiliary, -ed, -es, -s after a noun)."""
    for i, word in enumerate(words):
        if not word.islower():
            continue
        if word in _VERBS or (len(word) > 4 and word.endswith(_VERB_ENDINGS)):
            return True
        between = 0 < i < len(words) - 1 and words[i - 1].lower() not in _BEFORE_NOUNS
        if between and len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            return True
    return False


def _statement(line: str, headings: set[str]) -> str | None:
    """``line`` cleaned of emphasis when it states something, else None."""
    text = line.replace("**", "").replace("__", "").strip().strip("*_`").strip()
    if not text or text.startswith("#") or text.endswith(":") or text[0].islower() or text[-1] in ",;-–":
        return None  # a heading, a label, or a piece of a line cut in two
    words = _TOKEN.findall(text)
    if not _MIN_WORDS <= len(words) <= _MAX_WORDS or words[-1].lower() in _DANGLING:
        return None
    key = normalized(text)
    if _FRAMING.search(text) or key in headings or any(e and e in key for e in _ECHOES):
        return None
    ends = bool(_SENTENCE_END.search(text))
    long_words = [w for w in words if len(w) >= 4 and not w.isdigit()]
    if not ends and long_words and all(w[0].isupper() for w in long_words):
        return None  # Title Case without a sentence's end: a heading
    return text if ends or len(words) >= 7 or _verbish(words) else None


def _has_fact(text: str) -> bool:
    """A number, or a capitalized word after the first (a name rather than a sentence start)."""
    return bool(_NUMBER.search(text)) or any(w[0].isupper() and len(w) > 1 for w in _WORD.findall(text)[1:])


class _Spelling:
    """How the document writes its numbers and words, to check and correct a fact's."""

    def __init__(self, document: str) -> None:
        self.numbers = set(_NUMBER.findall(document))
        self.grouped: dict[str, str] = {}  # 4200 -> 4,200: the same number, its thousands grouped
        for spelled in _THOUSANDS.findall(document):
            self.grouped.setdefault(re.sub(r"\D", "", spelled), spelled)
        self.words = set(_WORD.findall(document))
        self.lowered: dict[str, str] = {}
        for word in sorted(self.words, key=lambda w: (not w[0].isupper(), w)):
            self.lowered.setdefault(word.lower(), word)
        self.names: dict[str, list[str]] = {}
        for word in self.words:
            if word[0].isupper() and len(word) > 2:
                self.names.setdefault(word[0], []).append(word)

    def fix(self, text: str) -> str | None:
        """``text`` with its numbers and names spelled as in the document, or None if it invents one."""
        failed = False

        def number(match: re.Match[str]) -> str:
            nonlocal failed
            value = match.group()
            if value in self.numbers:
                return value
            spelled = self.grouped.get(re.sub(r"\D", "", value))
            if spelled is None:
                failed = True
                return value
            return spelled

        def name(match: re.Match[str]) -> str:
            nonlocal failed
            word = match.group()
            before = match.string[: match.start()].rstrip()
            if not before or before.endswith((".", "!", "?", ":")):
                return word  # a sentence's first word is capitalized whatever it is
            if not word[0].isupper() or len(word) < 2 or word in self.words:
                return word
            known = self.lowered.get(word.lower()) or self._close(word)
            if known is None:
                failed = True
                return word
            return known

        fixed = _WORD.sub(name, _NUMBER.sub(number, text))
        return None if failed else fixed

    def _close(self, word: str) -> str | None:
        """The document's name one slip away from ``word`` ("Kerlow" for "Kerlo"), if just one is."""
        candidates = [w for w in self.names.get(word[0], ()) if abs(len(w) - len(word)) <= 2]
        found = difflib.get_close_matches(word, candidates, n=2, cutoff=0.8)
        return found[0] if len(found) == 1 else None


def _document_headings(document: str) -> set[str]:
    return {normalized(ln.lstrip("#")) for ln in document.splitlines() if ln.lstrip().startswith("#")}


def _spread(count: int) -> Iterator[int]:
    """0 .. count-1 in bit-reversed order, so every prefix covers the range evenly: 0, 1/2, 1/4, 3/4..."""
    bits = max(1, (count - 1).bit_length())
    seen: set[int] = set()
    for i in range(1 << bits):
        index = int(format(i, f"0{bits}b")[::-1], 2) * count >> bits
        if index not in seen:
            seen.add(index)
            yield index


class _Line:
    """A kept line, as compared with the next ones."""

    def __init__(self, fact: str) -> None:
        self.key = normalized(fact)
        self.padded = f" {self.key} "
        self.words = set(self.key.split())
        # What makes it this fact and not another: its numbers and its names.
        self.marks = {w for w in self.words if any(c.isdigit() for c in w)} | {
            w for w in _WORD.findall(fact)[1:] if w[0].isupper()
        }

    def repeats(self, other: _Line) -> bool:
        """True when ``other`` says what this line says: within it (or it within ``other``), or
        with the same numbers and names in nearly the same words ("the ferry leaves at 9" and
        "... at 10" are two facts)."""
        if self.padded in other.padded or other.padded in self.padded:
            return True
        same = len(self.words & other.words) >= 0.75 * len(self.words | other.words)
        return same and self.marks == other.marks


def key_facts(
    notes: list[str],
    budget: int,
    count: Callable[[str], int],
    written: str = "",
    document: str = "",
    texts: list[str] | None = None,
) -> list[str]:
    """The fact lines of ``notes`` (one bullet list per part), from every part, within ``budget`` tokens.

    Lines the summary already ``written`` says are left out. With the
    ``document``'s text, numbers and names are checked against it (see the
    module's docstring); without it, they are taken as written. With
    ``texts`` (each part's text, in the order of ``notes``), each part's own
    sentences with its most particular names and numbers (:mod:`.salient`)
    are taken too, in turns with its notes' lines, and each part's share of
    the lines follows its length.
    """
    already = normalized(written)
    headings = _document_headings(document)
    spelling = _Spelling(document) if document else None
    counts = MarkCounts(document) if texts is not None and document else None
    per_part: list[list[str]] = []
    for index, note in enumerate(notes):
        facts: list[str] = []
        for raw in note.splitlines():
            if not raw.strip().startswith(("- ", "* ")):
                continue
            fact = _statement(raw.strip()[2:], headings)
            if fact is not None and spelling is not None:
                fact = spelling.fix(fact)
            if fact is not None and _has_fact(fact):
                facts.append(fact)
        if counts is not None and texts is not None and index < len(texts):
            facts = _with_sentences(facts, texts[index], counts, headings)
        per_part.append(facts)
    sizes = [max(1, len(t)) for t in texts[: len(notes)]] if texts else []
    sizes += [max(sizes, default=1)] * (len(notes) - len(sizes))
    kept: list[_Line] = []
    chosen: list[tuple[int, int, str]] = []
    used = 0
    for part, depth in _turns(per_part, sizes):
        if budget - used < 4:
            break
        fact = per_part[part][depth]
        line = _Line(fact)
        if not line.key or line.key in already or any(k.repeats(line) for k in kept):
            continue
        cost = count(fact) + 2
        if used + cost > budget:
            continue  # a shorter line of another part may still fit
        kept.append(line)
        chosen.append((part, depth, fact))
        used += cost
    return [fact for _, _, fact in sorted(chosen)]


def _with_sentences(facts: list[str], text: str, counts: MarkCounts, headings: set[str]) -> list[str]:
    """``facts`` (a part's note lines) in turns with the part's salient sentences they do not cover."""
    covered = set().union(*(_Line(f).marks for f in facts)) if facts else set()
    found = []
    for sentence in salient_sentences(text, counts):
        statement = _statement(sentence, headings)
        if statement is not None and _has_fact(statement) and not _Line(statement).marks <= covered:
            found.append(statement)
    merged: list[str] = []
    for depth in range(max(len(facts), len(found))):
        merged.extend(x[depth] for x in (facts, found) if depth < len(x))
    return merged


def _turns(per_part: list[list[str]], sizes: list[int]) -> list[tuple[int, int]]:
    """Every (part, depth) in the order lines are taken: each part's n-th line comes when its share
    of the lines, in proportion to its length, calls for it; parts of equal length take turns in
    :func:`_spread`'s order."""
    rank = {part: n for n, part in enumerate(_spread(len(per_part)))}
    mean = sum(sizes) / max(1, len(sizes))
    # Shares in tenths of the mean part: parts a few characters apart take turns, not the longer first.
    weights = [max(1, round(10 * size / mean)) for size in sizes]
    order = [
        ((depth + 0.5) / weights[part], rank[part], part, depth)
        for part, lines in enumerate(per_part)
        for depth in range(len(lines))
    ]
    return [(part, depth) for _, _, part, depth in sorted(order)]
