"""The "Key facts" that end a default summary: statements only, once each, spelled as in the document,
taken from every part of it.

The notes below are what SmolLM2-135M writes on parts of a report: the
headings it copies, the labels it opens with, the prompt's framing it
repeats, the same fact twice, a number it made up.
"""

from __future__ import annotations

import itertools

from lollms_magics.summaries.facts import key_facts
from lollms_magics.summaries.tokens import estimate_tokens

DOCUMENT = """# Harbour report

## The harbour of Brest

The harbour of Brest opened in 1950. Mayor Anne Kerlo signed the plan on 3 May 1949.
The works cost 4,200,000 francs, paid by the city and the region.

## Budget

The budget for 1998 was 4,200 euros. The committee met in Quimper twice a year.

## Ferries

The ferry to Ushant leaves at 9 every morning. In winter the crossing takes 2.5 hours.
Storm Ciaran hit the coast in 2023 and closed the port for 6 days.
"""

NOTES = [
    # Part 1: the framing, a copied heading, a label, a fact twice, a sentence copied in two pieces, a fact.
    "- Part 1 of 3 of the document:\n"
    "- The harbour of Brest\n"
    "- **Key points:**\n"
    "- The harbour of Brest opened in 1950.\n"
    "- The harbour of  BREST opened in 1950\n"
    "- The works cost 4,200,000 francs, paid by the\n"
    "- city and the region.\n"
    "- Mayor Anne Kerlo signed the plan on 3 May 1949.\n"
    "- Keep every name, number, date and place exactly as written.",
    # Part 2: a heading in Title Case, a number spelled otherwise, a number made up, a misspelled name.
    "- Budget For The Year 1998\n"
    "- Budget:\n"
    "- The budget for 1998 was 4200 euros.\n"
    "- The works cost 5,300,000 francs.\n"
    "- The committee met in Quimperr twice a year.",
    # Part 3: facts without a final full stop, a name the document does not hold, a label line.
    "- Here are the key points of part 3:\n"
    "- The ferry to Ushant leaves at 9 every morning\n"
    "- The ferry to Ouessant leaves at 9\n"
    "- Storm Ciaran hit the coast in 2023 and closed the port for 6 days\n"
    "- Ferries",
]


def facts(notes: list[str], budget: int = 1000, written: str = "") -> list[str]:
    return key_facts(notes, budget, estimate_tokens, written, document=DOCUMENT)


def test_only_statements_of_the_document_are_kept_once_each_as_it_spells_them() -> None:
    assert facts(NOTES) == [
        "The harbour of Brest opened in 1950.",
        "Mayor Anne Kerlo signed the plan on 3 May 1949.",
        "The budget for 1998 was 4,200 euros.",  # 4200 written as the document writes it
        "The committee met in Quimper twice a year.",  # one letter off: the document's name
        "The ferry to Ushant leaves at 9 every morning",
        "Storm Ciaran hit the coast in 2023 and closed the port for 6 days",
    ]


def test_what_the_summary_already_says_is_not_repeated() -> None:
    kept = facts(NOTES, written="Mayor Anne Kerlo signed the plan on 3 May 1949. The harbour...")
    assert "Mayor Anne Kerlo signed the plan on 3 May 1949." not in kept
    assert len(kept) == 5


def test_nearly_the_same_words_count_as_a_repeat() -> None:
    notes = [
        "- The harbour of Brest opened in 1950.",
        "- In 1950, the harbour of Brest was opened.",
        "- The harbour of Brest opened in 1950, as the mayor said.",
    ]
    assert facts(notes) == ["The harbour of Brest opened in 1950."]


def test_the_same_words_with_another_number_are_another_fact() -> None:
    document = "The ferry to Ushant leaves at 9. On Sundays the ferry to Ushant leaves at 10."
    notes = ["- The ferry to Ushant leaves at 9.", "- The ferry to Ushant leaves at 10."]
    assert key_facts(notes, 100, estimate_tokens, document=document) == [n[2:] for n in notes]


def test_the_lines_come_from_every_part_even_when_few_fit() -> None:
    # 40 parts, each with its own fact; room for 5 lines: the first, the last and between, not parts 1-5.
    lines = [f"Ship number {i:02d} sailed from Brest in {1900 + i}." for i in range(40)]
    document = "\n\n".join(lines)
    notes = [f"- {line}" for line in lines]
    line_cost = max(estimate_tokens(line) for line in lines) + 2
    kept = key_facts(notes, 5 * line_cost, estimate_tokens, document=document)
    numbers = [int(k.split()[2]) for k in kept]
    assert len(numbers) == 5
    assert numbers == sorted(numbers)  # shown in the document's order
    assert numbers[0] == 0 and numbers[-1] >= 30  # the end of the document is reached
    assert all(b - a >= 5 for a, b in itertools.pairwise(numbers))  # spread, not bunched


def test_a_long_line_that_does_not_fit_does_not_end_the_list() -> None:
    long_fact = "- The harbour of Brest opened in 1950 " + "and the works went on " * 10 + "until 1998."
    notes = [long_fact, "- The ferry to Ushant leaves at 9 every morning."]
    kept = key_facts(notes, 20, estimate_tokens, document=DOCUMENT + " and the works went on until 1998.")
    assert kept == ["The ferry to Ushant leaves at 9 every morning."]


def test_without_the_document_the_spelling_is_not_checked() -> None:
    assert key_facts(["- The works cost 5,300,000 francs."], 100, estimate_tokens) == [
        "The works cost 5,300,000 francs."
    ]
