"""What both methods share: the state of one summary, merging notes, the final call.

Notes are bullet lists. When all of them fit the final call's room, one
final call writes the summary in the requested format. Otherwise they are
merged in rounds: consecutive notes are grouped to fill a merging call,
each group becomes a shorter list (the groups of a round run at once, over
the hosts), until everything fits. A merge that comes back broken or no
shorter is replaced by the first points of each note in its group, so every
round shrinks and the loop ends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .budget import Budget
from .calls import Answer, Caller
from .copies import cut_copies
from .facts import HEADING, key_facts
from .hosts import Host, run_jobs, run_on_first
from .progress import Tracker
from .prompts import Prompt, combine_prompt, final_prompt, instruction_lines, notes_prompt
from .quality import is_degenerate, key_points

__all__ = ["NOTE_STOPS", "Work", "as_bullets", "combine", "merge_notes", "single_call", "write_final"]

# Stop sequence of a notes call: a wide blank gap means the list is over. (Not the "<<<"
# markers: small models often open their answer by echoing them.)
NOTE_STOPS = ("\n\n\n",)
_SENTENCE_END = re.compile(r"[.!?…][\"'”»)*]*$")
_MAX_ROUNDS = 12


@dataclass
class Work:
    """One summary in progress."""

    hosts: list[Host]
    caller: Caller
    budget: Budget
    tracker: Tracker
    instruction: str | None
    output_format: str | None
    stream: Callable[[str], None] | None = None
    steps: list[str] = field(default_factory=list)
    final_text: str = ""  # what the final call wrote so far (kept on an interrupt)
    document: str = ""  # the text summarized: the key facts' numbers and names are checked against it
    document_tokens: int = 0
    texts: list[str] = field(default_factory=list)  # each part's text, for the key facts

    def notes_prompt_for(self, index: int, memory: str = "") -> tuple[Prompt, int]:
        """The notes prompt of part ``index`` (0-based) and its ``n_predict``, in proportion to the part."""
        part = self.texts[index]
        size = self.budget.notes_for(self.count(part), self.document_tokens or self.count(self.document))
        prompt = notes_prompt(
            part, index + 1, len(self.texts), self.instruction, self.budget.bullets_for(size), memory
        )
        return prompt, size

    def new_points(self, index: int, answer: Answer, prompt: Prompt, known: Iterable[str] = ()) -> list[str]:
        """The usable points of a notes ``answer`` on part ``index``: none for a loop or an echo,
        what they copied from the part cut away (:mod:`.copies`), and the last line left out
        when the length limit cut it in the middle of a sentence."""
        text = answer.text
        if answer.finish_reason == "length" and not _SENTENCE_END.search(text.rstrip()):
            text = text.rstrip().rpartition("\n")[0]
        points = key_points(text, known, echo=instruction_lines(prompt))
        if is_degenerate(text, points):
            return []  # not carried forward: later calls must not copy a loop or an echo
        return cut_copies(points, self.texts[index])

    def count(self, text: str) -> int:
        return self.caller.counter.estimate(text)


def as_bullets(points: list[str]) -> str:
    return "\n".join(f"- {p}" for p in points)


def combine(work: Work, notes: list[str]) -> str:
    """``notes`` merged until they fit the final call; returns the notes text to summarize."""
    for _ in range(_MAX_ROUNDS):
        joined = "\n".join(n for n in notes if n)
        if work.count(joined) <= work.budget.final_input:
            return joined
        groups = _groups([n for n in notes if n], work.budget.merge_input, work)
        work.tracker.add_steps(len(groups))

        def merge(binding: Any, group: list[str]) -> str:
            return merge_notes(work, binding, group)

        def done(_index: int, _text: str) -> None:
            work.tracker.step("combine")

        notes = run_jobs(work.hosts, groups, merge, work.caller.cancel, done, work.caller.stop)
    return _trim(notes, work.budget.final_input, work)


def _groups(notes: list[str], budget: int, work: Work) -> list[list[str]]:
    """Consecutive notes packed into groups of at most ``budget`` tokens (at least two per group)."""
    groups: list[list[str]] = []
    current: list[str] = []
    used = 0
    for note in notes:
        cost = work.count(note) + 1
        if len(current) >= 2 and used + cost > budget:
            groups.append(current)
            current, used = [], 0
        current.append(note)
        used += cost
    if current:
        groups.append(current)
    return groups


def merge_notes(work: Work, binding: Any, group: list[str]) -> str:
    source = "\n".join(group)
    if work.count(source) > work.budget.merge_input:
        source = _trim(group, work.budget.merge_input, work)  # two huge notes: keep their first points
    size = work.budget.merge_output(work.count(source))
    prompt = combine_prompt(source, max(3, size // 32), work.instruction)
    answer = work.caller.call(binding, prompt, size, NOTE_STOPS)
    points = key_points(answer.text, echo=instruction_lines(prompt))
    merged = as_bullets(points)
    work.steps.append(merged)
    if is_degenerate(answer.text, points) or work.count(merged) >= work.count(source):
        return _trim(group, size, work)
    return merged


def _trim(notes: list[str], budget: int, work: Work) -> str:
    """The first points of each note, taken in turns, within ``budget`` tokens (no model call)."""
    lines = [[ln for ln in n.splitlines() if ln.strip()] for n in notes]
    kept: list[list[str]] = [[] for _ in lines]
    used = 0
    for depth in range(max((len(x) for x in lines), default=0)):
        for i, note_lines in enumerate(lines):
            if depth < len(note_lines):
                cost = work.count(note_lines[depth]) + 1
                if used + cost > budget:
                    return "\n".join(ln for k in kept for ln in k)
                kept[i].append(note_lines[depth])
                used += cost
    return "\n".join(ln for k in kept for ln in k)


def write_final(work: Work, notes: str, *, whole: bool = False, parts: list[str] | None = None) -> Answer:
    """The summary, from ``notes`` (``whole``: the document), streamed to ``work.stream``.

    ``parts``: each chunk's notes, whose key facts end the summary when no format was asked for.
    """
    prompt = final_prompt(notes, work.instruction, work.output_format, whole=whole)
    pieces: list[str] = []

    def on_piece(piece: str) -> None:
        pieces.append(piece)
        work.final_text = "".join(pieces)
        if work.stream is not None:
            work.stream(piece)

    def attempt(binding: Any) -> Answer:
        pieces.clear()
        return work.caller.call(
            binding, prompt, work.budget.n_predict_final, (), on_piece=on_piece, cache=False
        )

    work.tracker.emit("final")
    answer = run_on_first(work.hosts, attempt)
    # Small models open (or close) their answer with the prompt's markers; they are not the summary.
    answer.text = "\n".join(ln for ln in answer.text.splitlines() if ln.strip() not in ("<<<", ">>>")).strip()
    texts = work.texts or None
    facts = (
        key_facts(parts, work.budget.n_predict_final, work.count, answer.text, work.document, texts)
        if parts
        else []
    )
    if facts and work.output_format is None:
        block = f"\n\n{HEADING}\n" + as_bullets(facts)
        answer.text += block
        if work.stream is not None:
            work.stream(block)
    work.final_text = answer.text
    work.tracker.step("final")
    return answer


def single_call(work: Work, text: str) -> Answer:
    """A document that fits one request is summarized by that request alone."""
    return write_final(work, text, whole=True)
