"""The prompts: notes on one part, merging notes, and the final summary.

Written for chat models, small ones included: the text comes first between
plain markers, the task after it (small models follow the last thing they
read), the answer is a bullet list with a stated size, and facts (names,
numbers, dates, places) are asked for explicitly. Nothing relies on a
pre-opened code fence, which chat templates ignore.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_INSTRUCTION",
    "FACT_RULE",
    "Prompt",
    "combine_prompt",
    "final_prompt",
    "notes_prompt",
]

DEFAULT_INSTRUCTION = "Note the key points of this part."
DEFAULT_FORMAT = "a few paragraphs of plain prose, then a bullet list of the key facts"
FACT_RULE = "Keep every name, number, date and place exactly as written. Write only what the text says."
SYSTEM = "You take precise notes on long documents, one part at a time."
# Tokens a chat template adds around each message (role markers, separators).
TEMPLATE_TOKENS = 24


@dataclass(frozen=True)
class Prompt:
    """A system and a user message."""

    system: str
    user: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]

    @property
    def text(self) -> str:
        return self.system + "\n" + self.user


def notes_prompt(
    chunk: str, index: int, total: int, instruction: str | None, bullets: int, memory: str = ""
) -> Prompt:
    """Notes on part ``index`` of ``total`` (1-based); ``memory``: notes so far (sequential)."""
    parts = []
    if memory:
        parts.append(f"Notes on the earlier parts:\n{memory}\n")
    parts.append(f"Part {index} of {total} of the document:\n<<<\n{chunk}\n>>>\n")
    task = instruction or DEFAULT_INSTRUCTION
    new = " that are not in the notes above" if memory else ""
    parts.append(
        f'{task}\nWrite at most {bullets} short bullet points ("- " at the start of each line) '
        f"about part {index}{new}. {FACT_RULE}"
    )
    return Prompt(SYSTEM, "\n".join(parts))


def combine_prompt(notes: str, bullets: int, instruction: str | None) -> Prompt:
    """Merge the notes of several parts into at most ``bullets`` points."""
    focus = f" Keep what matters for this task: {instruction}" if instruction else ""
    return Prompt(
        SYSTEM,
        f"Notes on consecutive parts of a document:\n<<<\n{notes}\n>>>\n"
        f'Merge these notes into at most {bullets} bullet points ("- " at the start of each line), '
        f"removing repeats.{focus} {FACT_RULE}",
    )


def final_prompt(
    notes: str, instruction: str | None, output_format: str | None, *, whole: bool = False
) -> Prompt:
    """Write the summary from all the notes (``whole``: from the document itself), in the format."""
    focus = f"\nThe reader asked: {instruction}" if instruction else ""
    what = "A document" if whole else "Notes on every part of a document, in order"
    source = "" if whole else " from these notes"
    return Prompt(
        "You write clear, faithful summaries.",
        f"{what}:\n<<<\n{notes}\n>>>\n"
        f"Write a summary of the whole document{source}, as {output_format or DEFAULT_FORMAT}."
        f"{focus}\n{FACT_RULE} Do not repeat yourself.",
    )


def instruction_lines(prompt: Prompt) -> list[str]:
    """The prompt's own instruction lines, which an answer copying them back must not keep."""
    lines = [ln for ln in prompt.user.splitlines() if ln.strip()]
    return [*lines[-2:], *FACT_RULE.split(". ")]
