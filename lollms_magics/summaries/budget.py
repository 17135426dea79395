"""How many tokens each part of a request may take, from the context size.

Every request is ``prompt template + text + answer``, and must fit the
context with a margin (chat templates and tokenizers differ a little from
our count). From the context size this module derives the chunk size, the
room for the sequential memory, for the notes of a merge and of the final
call, and the ``n_predict`` of each kind of call; and refuses, in one line,
a context too small for the prompts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InvalidOptionError
from .prompts import TEMPLATE_TOKENS, combine_prompt, final_prompt, notes_prompt
from .tokens import TokenCounter

__all__ = ["DEFAULT_CTX_SIZE", "Budget", "plan_budget"]

# When neither the user nor the binding knows the context: llama.cpp's and
# Ollama's historical default, the safe guess for a local server.
DEFAULT_CTX_SIZE = 2048
_MIN_TEXT = 64  # a request leaving less room than this for text is pointless
# Chunks no larger than this unless asked: a small model copies the start of a long
# chunk instead of taking notes (SmolLM2-135M's notes kept 3 of 40 benchmark facts with
# 2,400-token chunks, 11 with 1,200, before the notes were bounded). Each chunk also costs
# its prompt (~80 tokens a server cannot reuse): with notes bounded to 1/32 of their chunk,
# 1,200-token chunks took 41 calls, 1.13 times the document in prompt tokens and 1.16
# times the floor; 2,000-token chunks 21 calls, 1.08 and 1.14 times, but on the test
# document of tests/test_summarize_llama_server.py none of their notes was usable
# (benchmarks/README.md). The key facts come from every chunk's sentences either way.
DEFAULT_CHUNK = 1200
_TOKENS_PER_BULLET = 32
# Notes on a part may take this share of the part's tokens, or more on a short document
# (up to a quarter of the final call's room in all). Writing is what costs on a local server
# (a token written takes 2-4 times a token read), and a small model asked for 300 tokens
# of notes copies its part until the limit: on the 40-fact benchmark document SmolLM2-135M
# wrote 11,500 tokens of notes, a third of the document, for 1.6 times the floor
# (benchmarks/README.md). At 1/32 the notes are about 3% of the document.
NOTES_SHARE = 1 / 32
_MIN_NOTE = 24  # tokens: room for one short statement with its name or number


@dataclass(frozen=True)
class Budget:
    """The token budgets of one summary."""

    ctx_size: int
    chunk: int  # text of one chunk
    memory: int  # sequential: the notes shown with each chunk
    merge_input: int  # notes sent to one merging call
    final_input: int  # notes sent to the final call
    n_predict_step: int  # notes on a chunk, a merge
    n_predict_final: int  # the summary
    bullets: int  # key points asked per chunk
    overlap: int

    def notes_for(self, part_tokens: int, document_tokens: int) -> int:
        """``n_predict`` of the notes on one part: in proportion to the part.

        A share of the part's tokens (:data:`NOTES_SHARE`, more when the whole
        document's notes would still fill less than a quarter of the final call),
        at least :data:`_MIN_NOTE` and at most ``n_predict_step``.
        """
        share = max(NOTES_SHARE, self.final_input / (4 * max(1, document_tokens)))
        return max(_MIN_NOTE, min(self.n_predict_step, math.ceil(part_tokens * share)))

    def bullets_for(self, n_predict: int) -> int:
        """Bullet points asked for in ``n_predict`` tokens of notes (two at least: a fact and its context)."""
        return max(2, min(self.bullets, n_predict // 20))

    def merge_output(self, input_tokens: int) -> int:
        """``n_predict`` of a merge: half its input (so rounds shrink), within sane bounds."""
        return max(96, min(input_tokens // 2, 2 * self.n_predict_step))


def _overhead(counter: TokenCounter, text: str) -> int:
    return counter.estimate(text) + 2 * TEMPLATE_TOKENS


def plan_budget(
    counter: TokenCounter,
    ctx_size: int,
    *,
    sequential: bool,
    chunk_size: int | None,
    overlap: int | None,
    n_predict: int | None,
    instruction: str | None,
    output_format: str | None,
) -> Budget:
    """The budgets for ``ctx_size``; raises InvalidOptionError when the context is too small."""
    margin = ctx_size // 20 + 16
    step = max(64, min(512, ctx_size // 12))
    final = n_predict if n_predict is not None else max(128, min(1024, ctx_size // 4))
    bullets = max(3, step // _TOKENS_PER_BULLET)
    notes_cost = _overhead(counter, notes_prompt("", 999, 999, instruction, bullets, "x").text)
    memory = min(ctx_size // 5, 1024) if sequential else 0
    chunk = ctx_size - notes_cost - memory - step - margin
    final_input = (
        ctx_size - _overhead(counter, final_prompt("", instruction, output_format).text) - final - margin
    )
    merge_input = ctx_size - _overhead(counter, combine_prompt("", 99, instruction).text) - 2 * step - margin
    smallest = min(chunk, final_input, merge_input)
    if smallest < _MIN_TEXT:
        needed = ctx_size - smallest + _MIN_TEXT
        raise InvalidOptionError(
            f"a context of {ctx_size} tokens is too small for the prompts and answers "
            f"(needs at least {needed}); raise --ctx-size or lower -n/--n-predict"
        )
    if chunk_size is not None:
        if chunk_size < _MIN_TEXT:
            raise InvalidOptionError(
                f"--chunk-size {chunk_size} is too small; give at least {_MIN_TEXT} tokens"
            )
        chunk = min(chunk, chunk_size)  # larger would overflow the context
    else:
        chunk = min(chunk, DEFAULT_CHUNK)
    # No overlap by default: chunks already end at headings, paragraphs or sentences,
    # and every overlapping token is read twice.
    carried = 0 if overlap is None else overlap
    if carried < 0:
        raise InvalidOptionError("--overlap must be 0 or more tokens")
    return Budget(
        ctx_size, chunk, memory, merge_input, final_input, step, final, bullets, min(carried, chunk // 2)
    )
