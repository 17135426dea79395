"""Sequential: the chunks in order, each read with the notes so far, then one final call.

This is the course's ``sequential_summarize`` idea with its failure modes
designed out:

* the memory is a list of key points kept by the client, not the model's
  last answer: each call writes only the *new* points of its chunk, which
  are appended (so the model never rewrites, truncates or drifts the whole
  memory, and each call writes a few dozen tokens instead of the memory);
* the model sees the most recent notes that fit ``budget.memory`` tokens;
  when the whole memory outgrows what the final call can take, its older
  half is merged into fewer points (:func:`.work.combine`'s merge), so it
  stays bounded;
* a looping, echoing or empty answer is detected and dropped, never carried
  forward; a point already in the memory is not added twice;
* every call has an ``n_predict`` and stop sequences.

Each chunk reaches the model once, in order. Several hosts do not help here
(each step waits for the one before); they serve as fallbacks.
"""

from __future__ import annotations

from typing import Any

from .calls import Answer
from .hosts import run_on_first
from .quality import normalized
from .work import NOTE_STOPS, Work, as_bullets, combine, merge_notes, write_final

__all__ = ["sequential"]


def sequential(work: Work, chunks: list[str], memory: list[str]) -> str:
    """Summarize ``chunks`` in order; ``memory`` (the key points) grows as they are read."""
    total = len(chunks)
    known = {normalized(p) for p in memory}
    parts: list[str] = []  # each chunk's new points, for the key facts at the end
    work.texts = chunks
    work.tracker.emit("start")
    for index in range(total):
        view = _recent(memory, work.budget.memory, work)
        prompt, size = work.notes_prompt_for(index, view)

        def read(binding: Any, prompt: Any = prompt, size: int = size) -> Answer:
            return work.caller.call(binding, prompt, size, NOTE_STOPS)

        answer = run_on_first(work.hosts, read)
        points = work.new_points(index, answer, prompt, known)
        memory.extend(points)
        known.update(normalized(p) for p in points)
        work.steps.append(as_bullets(points))
        parts.append(as_bullets(points))
        work.tracker.step("chunk", index + 1)
        _bound(memory, work)
    notes = combine(work, [as_bullets(memory)])
    return write_final(work, notes, parts=parts).text


def _recent(memory: list[str], budget: int, work: Work) -> str:
    """The last points of ``memory`` that fit ``budget`` tokens."""
    kept: list[str] = []
    used = 0
    for point in reversed(memory):
        cost = work.count(point) + 2
        if used + cost > budget:
            break
        kept.append(point)
        used += cost
    return as_bullets(kept[::-1])


def _bound(memory: list[str], work: Work) -> None:
    """Merge the older half of ``memory`` when the whole no longer fits the final call."""
    if work.count(as_bullets(memory)) <= work.budget.final_input:
        return
    half = len(memory) // 2
    older = as_bullets(memory[:half])
    merged = combine_older(work, older)
    memory[:half] = [ln[2:] if ln.startswith("- ") else ln for ln in merged.splitlines() if ln.strip()]


def combine_older(work: Work, notes: str) -> str:
    """``notes`` merged into fewer points by one merging call (on the first host that works)."""

    def merge(binding: Any) -> str:
        return merge_notes(work, binding, [notes])

    return run_on_first(work.hosts, merge)
