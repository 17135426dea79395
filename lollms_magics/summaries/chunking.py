"""Cutting a document into chunks that fit the model's context, at natural breaks.

A chunk is at most ``budget`` tokens. The text is first cut into blocks
(headings and paragraphs); a block too large for a chunk is cut at line
ends, then at sentence ends, and only a sentence longer than a whole chunk
is cut between words, never inside one. Blocks are packed greedily, but a
heading that arrives when the chunk is already well filled starts the next
chunk, and no chunk ends with a heading. With ``overlap`` tokens, each chunk
after the first begins with the last sentences of the one before.

Packing uses the counter's quick estimate; each finished chunk is then
counted exactly once (one tokenizer request) and split further in the rare
case the estimate was short.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..errors import InvalidOptionError
from .tokens import TokenCounter

__all__ = ["chunk_text", "split_blocks"]

_BLANK_LINES = re.compile(r"\r?\n[ \t]*(?:\r?\n)+")
_SENTENCE_END = re.compile(r"(?<=[.!?;:…。！？])\s+")
_HEADING = re.compile(r"^#{1,6}\s")
# A heading arriving after this share of the budget starts a new chunk.
_HEADING_BREAK = 0.6


def split_blocks(text: str) -> Iterator[str]:
    """Headings and paragraphs of ``text``, stripped, in order (a heading is its own block).

    Paragraphs are found one at a time, so a long document is never copied
    whole into a list of its paragraphs.
    """
    start = 0
    for gap in _BLANK_LINES.finditer(text):
        yield from _paragraph_blocks(text[start : gap.start()])
        start = gap.end()
    yield from _paragraph_blocks(text[start:])


def _paragraph_blocks(paragraph: str) -> Iterator[str]:
    lines: list[str] = []
    for line in paragraph.replace("\r\n", "\n").split("\n"):
        if _HEADING.match(line.lstrip()):
            if lines:
                yield "\n".join(lines).strip()
                lines = []
            yield line.strip()
        else:
            lines.append(line)
    rest = "\n".join(lines).strip()
    if rest:
        yield rest


def _pieces(block: str, budget: int, counter: TokenCounter) -> Iterator[str]:
    """``block`` itself if it fits, else its lines, sentences, then runs of words that do."""
    if counter.estimate(block) <= budget:
        yield block
        return
    for separator, parts in (("\n", block.split("\n")), (" ", _SENTENCE_END.split(block))):
        if len(parts) > 1:
            for part in _pack(parts, budget, counter, separator):
                yield from _pieces(part, budget, counter)
            return
    yield from _words(block, budget, counter)


def _pack(parts: list[str], budget: int, counter: TokenCounter, separator: str) -> Iterator[str]:
    """Consecutive ``parts`` joined while they fit (a part too big alone comes out alone)."""
    current: list[str] = []
    used = 0
    for part in parts:
        cost = counter.estimate(part) + 1
        if current and used + cost > budget:
            yield separator.join(current)
            current, used = [], 0
        current.append(part)
        used += cost
    if current:
        yield separator.join(current)


def _words(text: str, budget: int, counter: TokenCounter) -> Iterator[str]:
    """Runs of whole words of at most ``budget`` tokens (a lone word longer than that is cut)."""
    current: list[str] = []
    used = 0
    for word in text.split():
        cost = counter.estimate(word) + 1
        if cost > budget:  # a "word" of thousands of characters (base64, a URL...)
            step = max(1, int(len(word) * budget / cost))
            yield from (word[i : i + step] for i in range(0, len(word), step))
            continue
        if current and used + cost > budget:
            yield " ".join(current)
            current, used = [], 0
        current.append(word)
        used += cost
    if current:
        yield " ".join(current)


def chunk_text(text: str, budget: int, counter: TokenCounter, overlap: int = 0) -> Iterator[str]:
    """The chunks of ``text``, each at most ``budget`` tokens, with ``overlap`` tokens carried over."""
    if budget < 16:
        raise InvalidOptionError(f"chunks of {budget} tokens are too small to summarize; raise --ctx-size")
    overlap = max(0, min(overlap, budget // 2))  # an overlap as large as a chunk would never advance
    current: list[str] = []
    used = 0
    for block in split_blocks(text):
        for piece in _pieces(block, budget - overlap, counter):
            cost = counter.estimate(piece) + 2
            heading = bool(_HEADING.match(piece))
            full = used + cost > budget or (heading and used > budget * _HEADING_BREAK)
            if current and full:
                tail = _trailing_headings(current)
                yield from _checked(current, budget, counter)
                current = _overlap_of(current, overlap, counter) + tail
                used = sum(counter.estimate(p) + 2 for p in current)
            current.append(piece)
            used += cost
    if current:
        yield from _checked(current, budget, counter)


def _trailing_headings(current: list[str]) -> list[str]:
    """Remove and return the headings at the end of ``current`` (they belong to the next chunk)."""
    tail: list[str] = []
    while len(current) > 1 and _HEADING.match(current[-1]):
        tail.insert(0, current.pop())
    return tail


def _overlap_of(pieces: list[str], overlap: int, counter: TokenCounter) -> list[str]:
    """The last sentences of ``pieces`` that fit in ``overlap`` tokens (else its last words)."""
    if overlap <= 0:
        return []
    for parts, separator in ((_SENTENCE_END.split(pieces[-1]), " "), (pieces[-1].split(), " ")):
        kept: list[str] = []
        used = 0
        for part in reversed(parts):
            cost = counter.estimate(part) + 1
            if used + cost > overlap:
                break
            kept.insert(0, part)
            used += cost
        if kept:
            return [separator.join(kept)]
    return []


def _checked(pieces: list[str], budget: int, counter: TokenCounter) -> Iterator[str]:
    """The chunk made of ``pieces``, counted exactly; halved while it is over the budget."""
    chunk = "\n\n".join(pieces)
    if counter.count(chunk) <= budget:
        yield chunk
        return
    if len(pieces) == 1:
        words = pieces[0].split(" ")
        if len(words) == 1:
            half = len(pieces[0]) // 2
            pieces = [pieces[0][:half], pieces[0][half:]]
        else:
            pieces = [" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :])]
        for part in pieces:
            yield from _checked([part], budget, counter)
        return
    middle = len(pieces) // 2
    yield from _checked(pieces[:middle], budget, counter)
    yield from _checked(pieces[middle:], budget, counter)
