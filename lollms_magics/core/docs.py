"""Questions over documents: the passages of a SOURCE that answer a question, with their sources.

``Session.ask(question, docs=SOURCE)`` and ``%%lollms --docs SOURCE`` read
SOURCE as ``%lollms summarize`` does (:func:`~lollms_magics.summaries.load_source`,
the same chunker), rank its chunks for the question with BM25 (the ``bm25s``
library: no model, no vector database), and send the best ones that fit the
context window, each under a label the answer cites: ``[report.pdf p. 4]``
for a PDF page, ``[notes.md §3]`` for the third chunk of a file.

The index of a source is kept in the session and re-used across questions;
a source naming files is read again when one of its files changes (its
modification time or size), a value (a string, a DataFrame) when its text
changes; a URL is read once per session. A document holding a known API key is refused before anything is
sent, and so is a passage about to be sent, should a key be added later.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InvalidOptionError

if TYPE_CHECKING:
    from ..bindings.base import Binding
    from ..summaries.document import Document
    from ..summaries.tokens import TokenCounter
    from .keys import KeyStore

__all__ = ["CHUNK_TOKENS", "DocsIndex", "Passage", "cited", "docs_prompt", "prompt_with_docs"]

CHUNK_TOKENS = 200
"""Estimated tokens of one chunk: small enough to send several, large enough to hold a fact whole."""


class _Asker(Protocol):
    """What a question over documents needs of the session (a Protocol: no import of Session)."""

    context_size: int
    docs: DocsIndex
    keys: KeyStore

    def load_document(self, source: Any) -> Document: ...


_MAX_SOURCES = 16  # indexes kept per session; the oldest is dropped past this
_TOKEN_PATTERN = r"(?u)\b\w+\b"  # bm25s's default drops one-character tokens: "7", "x"
_INSTRUCTION = (
    "Answer the question from the passages below. After each statement, cite the passages it comes "
    "from by their labels in square brackets, e.g. [{example}]. If the passages do not hold the "
    "answer, say so."
)


@dataclass(frozen=True)
class Passage:
    """A chunk of a document as sent: its ``label`` (``report.pdf p. 4``), ``text`` and BM25 ``score``."""

    label: str
    text: str
    score: float = 0.0


@dataclass
class _Index:
    """The chunks of one source and their BM25 index."""

    passages: list[Passage]
    name: str
    files: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (mtime_ns, size)
    digest: str = ""
    retriever: Any = None

    def ranked(self, question: str) -> list[tuple[float, int]]:
        """(score, chunk number) of the chunks sharing a word with ``question``, best first."""
        import bm25s  # type: ignore[import-untyped]  # imported on first question: it brings numpy

        if self.retriever is None:
            self.retriever = bm25s.BM25()
            tokens = bm25s.tokenize([p.text for p in self.passages], stopwords="en",
                                    token_pattern=_TOKEN_PATTERN, show_progress=False)
            self.retriever.index(tokens, show_progress=False)
        words = bm25s.tokenize([question], stopwords="en", token_pattern=_TOKEN_PATTERN,
                               return_ids=False, show_progress=False)[0]
        if not words:
            return []
        scores = self.retriever.get_scores(list(words))
        order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
        return [(float(scores[i]), i) for i in order if scores[i] > 0]


def _stats(paths: list[str]) -> dict[str, tuple[int, int]]:
    found = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            found[path] = (-1, -1)  # gone: differs from any stat it had, so the source is read again
        else:
            found[path] = (st.st_mtime_ns, st.st_size)
    return found


def _files_of(document: Document) -> list[str]:
    return [p.path for p in document.parts or [document] if p.path]


def _chunks(document: Document) -> list[Passage]:
    """The labelled chunks of ``document``: per file, per PDF page when its pages are known."""
    from ..summaries.chunking import chunk_text
    from ..summaries.tokens import TokenCounter

    counter = TokenCounter(None)  # the estimate: one tokenizer request per chunk would cost minutes
    passages: list[Passage] = []
    for part in document.parts or [document]:
        if part.pages:
            for number, page in enumerate(part.pages, 1):
                passages += [Passage(f"{part.name} p. {number}", chunk)
                             for chunk in chunk_text(page, CHUNK_TOKENS, counter) if chunk.strip()]
        else:
            chunks = [c for c in chunk_text(part.text, CHUNK_TOKENS, counter) if c.strip()]
            passages += [Passage(f"{part.name} §{n}", chunk) for n, chunk in enumerate(chunks, 1)]
    return passages


class DocsIndex:
    """The indexes of the sources asked about in a session, re-used across questions."""

    def __init__(self) -> None:
        self._indexes: dict[str, _Index] = {}

    def index(self, source: Any, load: Callable[[Any], Document]) -> _Index:
        """The index of ``source``, read with ``load`` when new or changed since it was read."""
        named = isinstance(source, (str, Path))
        key = f"source:{source}" if named else ""
        kept = self._indexes.get(key) if named else None
        if kept is not None and (not kept.files or _stats(list(kept.files)) == kept.files):
            return kept
        document = load(source)
        digest = hashlib.sha256(document.text.encode("utf-8", "surrogatepass")).hexdigest()
        if not named:
            key = f"value:{digest}"
            kept = self._indexes.get(key)
            if kept is not None:
                return kept
        files = _files_of(document)
        passages = _chunks(document)
        if not passages:
            from ..errors import DocumentError

            raise DocumentError(f"{document.name} has no text to ask about")
        built = _Index(passages, document.name, _stats(files), digest)
        self._indexes.pop(key, None)
        self._indexes[key] = built
        while len(self._indexes) > _MAX_SOURCES:
            self._indexes.pop(next(iter(self._indexes)))
        return built

    def clear(self) -> None:
        """Forget every index (the next question reads its source again)."""
        self._indexes.clear()

    def select(self, index: _Index, question: str, room: int, counter: TokenCounter) -> list[Passage]:
        """The best passages for ``question`` that fit in ``room`` tokens, best first."""
        chosen: list[Passage] = []
        used = 0
        ranked = index.ranked(question)
        if ranked:
            counter.calibrate("\n\n".join(index.passages[i].text for _, i in ranked[:4]))
        for score, number in ranked:
            passage = index.passages[number]
            cost = counter.estimate(passage.text) + counter.estimate(passage.label) + 4
            if used + cost > room:
                continue  # a shorter one further down may still fit
            chosen.append(Passage(passage.label, passage.text, score))
            used += cost
        return chosen


def docs_prompt(question: str, passages: list[Passage]) -> str:
    """The prompt sent: the instruction, each passage under its label, then the question."""
    example = passages[0].label if passages else "report.pdf p. 4"
    blocks = [_INSTRUCTION.format(example=example)]
    # The best passage last, next to the question: small models lean on what they read last.
    blocks += [f"[{p.label}]\n{p.text}" for p in reversed(passages)]
    if not passages:
        blocks.append("(No passage of the documents shares a word with the question.)")
    blocks.append(f"Question: {question}")
    return "\n\n".join(blocks)


def cited(answer: str, passages: list[Passage]) -> list[str]:
    """The labels of ``passages`` that ``answer`` cites, in their order (``[a.md §2; b.md §3]`` too)."""
    found: set[str] = set()
    for group in re.findall(r"\[([^\[\]]+)\]", answer):
        found.update(part.strip() for part in re.split(r"[;,]\s*(?=\S)", group))
        found.add(group.strip())
    labels = dict.fromkeys(p.label for p in passages)
    return [label for label in labels if label in found]


def prompt_with_docs(
    session: _Asker, chosen: Binding, question: str, system: str | None, options: dict[str, Any],
    source: Any,
) -> tuple[str, list[Passage]]:
    """The prompt asking ``question`` over ``source`` for ``chosen``, and the passages in it.

    The passages fill at most three quarters of what the window leaves after
    the answer's reserve, the question and the system prompt; the rest is for
    the conversation so far.
    """
    from ..summaries.tokens import TokenCounter
    from .history import answer_reserve, history_window

    window = history_window(session.context_size, options.get("ctx_size"), chosen.context_size)
    counter = TokenCounter(chosen)
    fixed = docs_prompt(question, [Passage("x", "")]) + (system or "")
    room = (window - answer_reserve(window, options.get("n_predict")) - counter.estimate(fixed)) * 3 // 4
    if room < 64:
        raise InvalidOptionError(
            f"only {max(room, 0)} tokens of the {window}-token window are left for the documents' "
            "passages; raise --ctx-size"
        )
    index = session.docs.index(source, session.load_document)
    passages = session.docs.select(index, question, room, counter)
    keys = session.keys
    for passage in passages:  # a key typed in after the source was indexed
        if keys.holds_secret(passage.text):
            where = f"the document {keys.redact(index.name)} ({keys.redact(passage.label)})"
            keys.refuse(passage.text, where)
    return docs_prompt(question, passages), passages
