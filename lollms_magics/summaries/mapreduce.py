"""Map-reduce: notes on every chunk independently, then merged and summarized.

Each chunk is read once, with only a short fixed prompt around it, and
answered with a bullet list bounded in proportion to the chunk; what the
answer copied from the chunk is cut (:mod:`.copies`) and a point an earlier
chunk's notes already made is left out; up to ``concurrency`` chunks per host
are in flight at once (threads; see :mod:`.hosts`). The notes are then
merged in as many rounds as the context needs (:func:`.work.combine`) and
the final call writes the summary.

Why it is the default: on a one-slot local server the wall time is the
server's compute time, i.e. the tokens read and written. Map-reduce reads
the document once plus a ~100-token prompt per chunk, and writes only the
notes; the sequential method also re-reads its memory with every chunk and
gets smaller chunks (the memory takes room), so it makes more, longer calls
for the same notes. On servers that batch (llama.cpp ``-np``, vLLM, Ollama
with ``OLLAMA_NUM_PARALLEL``) or on several hosts, map-reduce is also the
only one of the two that runs requests in parallel.
"""

from __future__ import annotations

from typing import Any

from .hosts import run_jobs
from .quality import normalized
from .work import NOTE_STOPS, Work, as_bullets, combine, write_final

__all__ = ["map_reduce"]


def map_reduce(work: Work, chunks: list[str], notes: dict[int, str]) -> str:
    """Summarize ``chunks``; ``notes`` is filled as chunks finish (kept on an interrupt)."""
    total = len(chunks)

    work.texts = chunks

    def read(binding: Any, index: int) -> str:
        prompt, size = work.notes_prompt_for(index)
        answer = work.caller.call(binding, prompt, size, NOTE_STOPS)
        return as_bullets(work.new_points(index, answer, prompt))

    def done(index: int, text: str) -> None:
        notes[index] = text
        work.tracker.step("chunk", index + 1)

    work.tracker.emit("start")
    results = _once(
        run_jobs(work.hosts, list(range(total)), read, work.caller.cancel, done, work.caller.stop)
    )
    work.steps.extend(results)
    merged = combine(work, results)
    return write_final(work, merged, parts=results).text


def _once(notes: list[str]) -> list[str]:
    """Each note without the points an earlier part's note already made (a small model repeats
    the same line about every part); the final call reads each point once."""
    seen: set[str] = set()
    kept: list[str] = []
    for note in notes:
        lines = []
        for line in note.splitlines():
            key = normalized(line)
            if key and key not in seen:
                seen.add(key)
                lines.append(line)
        kept.append("\n".join(lines))
    return kept
