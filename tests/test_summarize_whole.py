"""Summaries keep the whole document: key facts from every part in proportion, notes bounded in
proportion to their part, and what a note copied from its part dropped before the notes are merged.

Every test goes through ``summarize`` against the loopback OpenAI-compatible server, whose
``reply`` plays a model: it reads the part between the prompt's markers and answers from it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import pytest

from lollms_magics.summaries import summarize
from lollms_magics.summaries.copies import cut_copies
from lollms_magics.summaries.quality import key_points
from lollms_magics.summaries.resume import shared_memory
from tests.servers import OpenAIServer
from tests.servers.base import word_count
from tests.test_summarize import binding_for, chat_requests, serve, user_text

pytestmark = pytest.mark.timeout(120)

_SHIP = re.compile(r"\bShip(\d{4})\b")
_SYLLABLES = ("bar", "ken", "lor", "mis", "dun", "vel", "tor", "ash", "pen", "quil")


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    shared_memory().clear()
    yield
    shared_memory().clear()


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    srv = serve()
    yield srv
    srv.stop()


def long_document(paragraphs: int) -> str:
    """A log of barges: one paragraph each, a numbered barge named once, the rest plain filler."""
    return "\n\n".join(
        f"On that morning the keeper wrote that the barge Ship{i:04d} reached the quay before noon. "
        "The wind was mild and the water calm, and the people of the valley went about their work "
        "as they had done for many seasons, carrying baskets to the market and tending their gardens. "
        "Nobody spoke of the weather for long, and the evening was quiet."
        for i in range(1, paragraphs + 1)
    )


def part_of(prompt: str) -> str:
    return prompt.split("<<<", 1)[1].split(">>>", 1)[0] if "<<<" in prompt else ""


def is_notes_request(prompt: str) -> bool:
    return prompt.startswith("Part ") and "<<<" in prompt


def paraphrasing_notes(prompt: str) -> str:
    """Notes in the model's own words: a line per barge of the part (more than any limit allows)."""
    if is_notes_request(prompt):
        return "\n".join(f"- Ship{n} docked in the morning." for n in _SHIP.findall(part_of(prompt)))
    if prompt.startswith("Notes on consecutive"):  # a merge keeps one line in three
        lines = part_of(prompt).strip().splitlines()
        return "\n".join(lines[::3])
    return "The keeper's log lists the barges that reached the quay."


def key_fact_lines(text: str) -> list[str]:
    assert "\n\nKey facts:\n" in text
    return [ln for ln in text.split("\n\nKey facts:\n", 1)[1].splitlines() if ln.startswith("- ")]


def test_the_key_facts_of_a_long_document_come_from_all_of_it_in_proportion(server: OpenAIServer) -> None:
    server.reply = paraphrasing_notes
    paragraphs = 1200
    document = long_document(paragraphs)
    assert len(document) > 390_000
    result = summarize(document, binding_for(server), ctx_size=4096)
    assert result.complete and result.chunks > 60
    numbers = [int(n) for line in key_fact_lines(result.text) for n in _SHIP.findall(line)]
    assert len(numbers) >= 20
    assert numbers == sorted(numbers)  # in the document's order
    tenths = Counter((n - 1) * 10 // paragraphs for n in numbers)
    # Every tenth of the document is there, the first and the last included...
    assert sorted(tenths) == list(range(10))
    # ...in proportion: no tenth holds more than twice its share.
    assert max(tenths.values()) <= 2 * len(numbers) / 10 + 1


def notes_limits(server: OpenAIServer, document: str, **options: object) -> list[int]:
    before = len(chat_requests(server))
    result = summarize(document, binding_for(server), ctx_size=4096, **options)
    assert result.complete
    notes = [r for r in chat_requests(server)[before:] if is_notes_request(user_text(r))]
    assert len(notes) == result.chunks > 10
    # Bounded notes fit the final call: no merge round, one final call after the notes.
    assert result.calls == len(notes) + 1
    return [r.json["max_tokens"] for r in notes]


def test_notes_are_bounded_in_proportion_to_their_part(server: OpenAIServer) -> None:
    server.reply = paraphrasing_notes
    document = long_document(300)
    small, large = (
        notes_limits(server, document, chunk_size=1000),
        notes_limits(server, document, chunk_size=2000),
    )
    # The notes of the whole document together are a small share of it (they were ~35% with
    # SmolLM2-135M before the bound), whatever the size of the parts...
    assert sum(small) <= 0.06 * word_count(document) and sum(large) <= 0.06 * word_count(document)
    assert 0.8 <= sum(small) / sum(large) <= 1.25
    # ...and a part twice as long may write notes about twice as long.
    assert 1.6 <= sorted(large)[len(large) // 2] / sorted(small)[len(small) // 2] <= 2.4


def copying_notes(prompt: str) -> str:
    """What a small model writes: its part's sentences back, one with a few words of its own."""
    if not is_notes_request(prompt):
        return "The log tells of barges."
    sentences = re.split(r"(?<=\.) ", " ".join(part_of(prompt).split()))
    return (
        f"- {sentences[3]}\n"
        f"- {sentences[0][:-1]}, which the harbour clerk Marnix Oduya doubted in his own ledger.\n"
        "- The clerk Marnix Oduya kept a second ledger of the tolls."
    )


def test_what_a_note_copied_from_its_part_is_dropped_before_the_final_call(server: OpenAIServer) -> None:
    server.reply = copying_notes
    document = long_document(60)
    result = summarize(document, binding_for(server), ctx_size=4096)
    assert result.complete and result.chunks > 3
    final = user_text(chat_requests(server)[-1])
    assert final.startswith("Notes on every part of a document")
    notes = part_of(final)
    # No copied sentence reaches the final call...
    assert "Nobody spoke of the weather" not in notes
    assert "reached the quay before noon" not in notes
    # ...but the words the model added to a copy, and its own statements, do.
    assert "the harbour clerk Marnix Oduya doubted in his own ledger." in notes
    assert notes.count("The clerk Marnix Oduya kept a second ledger of the tolls.") == 1  # once, not per part


def test_cut_copies_keeps_what_is_new_and_short_quotes() -> None:
    part = "The barge Ship0001 reached the quay before noon. The wind was mild and the water calm."
    points = [
        "The wind was mild and the water calm.",  # a copy
        "The barge Ship0001 reached the quay before noon, the clerk Marnix wrote angrily in red ink.",
        "Ship0001 was late, as the quay before noon shows.",  # a short quote inside a statement
        "The wind was mild",  # a short copy
    ]
    assert cut_copies(points, part) == [
        "The clerk Marnix wrote angrily in red ink.",
        "Ship0001 was late, as the quay before noon shows.",
    ]


def meta_notes(prompt: str) -> str:
    """Notes that name nothing: what SmolLM2-135M often writes about the prompt instead of the text."""
    if is_notes_request(prompt):
        return "- This part is about the section and its points.\n- The text describes the part."
    return "A summary of the town's year."


def test_without_facts_in_the_notes_each_part_gives_its_own_sentences(server: OpenAIServer) -> None:
    server.reply = meta_notes
    sections = []
    for i in range(24):
        name = "".join(_SYLLABLES[int(d)] for d in f"{i:02d}").capitalize()
        sections.append(
            f"## Month {i + 1}\n\n"
            "In the town, the Harbour Board met again and the Harbour Board chose its agenda. "
            "The market was busy and the streets were full of carts and stalls all day long. "
            f"That month the tower of {name}wick was repaired by the masons of the valley. "
            "The evening bells rang over the roofs and everyone went home before the night fell."
        )
    document = "\n\n".join(sections)
    result = summarize(document, binding_for(server), ctx_size=1024)
    assert result.complete and result.chunks >= 4
    lines = key_fact_lines(result.text)
    assert lines and all("Harbour Board" not in ln for ln in lines)  # a name on every page is not a key fact
    towers = [ln for ln in lines if "was repaired by the masons" in ln]
    assert towers == lines  # the document's own sentences, as written
    towns = [section.split("tower of ")[1].split(" was")[0] for section in sections]
    months = sorted(towns.index(t) for ln in lines for t in towns if f" {t} " in ln)
    assert len(months) == len(lines) and months[0] <= 2 and months[-1] >= 18  # the first and last parts


def test_a_loop_cut_by_the_length_limit_is_not_a_point() -> None:
    loop = "- the committee met and the committee met again and " * 3 + "the committee"
    assert key_points(loop) == []
    assert key_points("- The committee met on 3 May.\n- The committee met again on 4 May.") == [
        "The committee met on 3 May.",
        "The committee met again on 4 May.",
    ]


def test_a_note_cut_by_its_limit_loses_its_unfinished_line(server: OpenAIServer) -> None:
    def long_note(prompt: str) -> str:
        if not is_notes_request(prompt):
            return "A summary."
        first = _SHIP.findall(part_of(prompt))[0]
        crews = ", ".join(f"crew {k} unloaded {k + 7} bales" for k in range(200))  # no loop, no end
        return f"- Ship{first} docked in the morning.\n- Then {crews}"

    server.reply = long_note
    result = summarize(long_document(200), binding_for(server), ctx_size=4096)
    assert result.complete and result.chunks > 3
    assert result.steps and all(re.fullmatch(r"- Ship\d{4} docked in the morning\.", s) for s in result.steps)
