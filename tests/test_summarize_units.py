"""The pieces of a summary on their own: chunking, token estimates, loop detection, key points."""

from __future__ import annotations

import itertools
import re
import tracemalloc

import pytest

from lollms_magics.errors import InvalidOptionError
from lollms_magics.summaries.chunking import chunk_text, split_blocks
from lollms_magics.summaries.facts import key_facts
from lollms_magics.summaries.progress import ProgressEvent, describe
from lollms_magics.summaries.quality import RunawayGuard, is_degenerate, key_points
from lollms_magics.summaries.tokens import TokenCounter, estimate_tokens


class Words:
    """A binding stand-in whose tokenizer gives one token per whitespace-separated word."""

    def __init__(self) -> None:
        self.calls = 0

    def tokenize(self, text: str) -> list[int]:
        self.calls += 1
        return list(range(len(text.split())))


def words(text: str) -> list[str]:
    return text.split()


def test_blocks_are_headings_and_paragraphs() -> None:
    text = "# Title\nIntro line\nsecond line\n\n## Part\n\nBody.\n\n\n  \nEnd."
    assert list(split_blocks(text)) == ["# Title", "Intro line\nsecond line", "## Part", "Body.", "End."]


def test_chunks_never_cut_a_word_and_keep_every_word_in_order() -> None:
    text = " ".join(f"word{i}" for i in range(3000))  # one paragraph, no sentence ends
    counter = TokenCounter(Words())
    chunks = list(chunk_text(text, 100, counter))
    assert [w for c in chunks for w in words(c)] == words(text)
    assert all(len(words(c)) <= 100 for c in chunks)


def test_chunks_break_at_sentences_inside_a_long_paragraph() -> None:
    sentences = [f"Sentence {i} has exactly seven words here." for i in range(200)]
    counter = TokenCounter(Words())
    chunks = list(chunk_text(" ".join(sentences), 50, counter))
    assert all(c.endswith("here.") for c in chunks)  # every chunk ends where a sentence ends
    assert " ".join(chunks) == " ".join(sentences)


def test_a_heading_starts_a_new_chunk_and_never_ends_one() -> None:
    sections = [f"## Section {i}\n\n" + " ".join(["Some text here."] * 12) for i in range(10)]
    counter = TokenCounter(Words())
    chunks = list(chunk_text("\n\n".join(sections), 80, counter))
    assert all(c.startswith("## Section") for c in chunks)
    assert not any(c.rstrip().splitlines()[-1].startswith("#") for c in chunks)


def test_chunks_fit_the_exact_count_even_when_the_estimate_is_short() -> None:
    class Dense(Words):
        def tokenize(
            self, text: str
        ) -> list[int]:  # 3 tokens a word: the sample calibrates, chunks are checked
            self.calls += 1
            return list(range(3 * len(text.split())))

    text = "alpha beta gamma delta. " * 400 + "1 2 3 4 5 6 7 8 9 " * 200
    counter = TokenCounter(Dense())
    counter.calibrate(text[:400])
    chunks = list(chunk_text(text, 90, counter))
    assert all(3 * len(words(c)) <= 90 for c in chunks)
    assert [w for c in chunks for w in words(c)] == words(text)


def test_overlap_carries_the_last_sentences() -> None:
    text = " ".join(f"Sentence {i} is short." for i in range(100))
    chunks = list(chunk_text(text, 40, TokenCounter(Words()), overlap=20))
    assert len(chunks) > 5
    for earlier, later in itertools.pairwise(chunks):
        before = re.findall(r"Sentence \d+ is short\.", earlier)
        after = re.findall(r"Sentence \d+ is short\.", later)
        assert after[0] in before[1:] and before[-1] in after  # the end of one opens the next


def test_tiny_chunks_are_refused() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        list(chunk_text("some text", 10, TokenCounter(None)))
    assert str(caught.value) == "chunks of 10 tokens are too small to summarize; raise --ctx-size"


def test_a_500_page_document_is_chunked_in_bounded_memory() -> None:
    page = "\n\n".join(" ".join(["The harbour board met and agreed on the plan."] * 6) for _ in range(6))
    text = "\n\n".join(f"## Page {i}\n\n{page}" for i in range(500))  # about 1.4 MB
    tracemalloc.start()
    try:
        count = sum(1 for _ in chunk_text(text, 1500, TokenCounter(None)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count > 100
    assert peak < len(text)  # the chunks are made one at a time, never all copies at once


@pytest.mark.parametrize(
    ("text", "smollm2_tokens"),
    [
        # Counted with SmolLM2-135M's own tokenizer (llama_cpp, add_bos=False).
        ("The committee met in Brest on 3 May 1998 to vote the harbour budget.", 21),
        ("Le comité s'est réuni à Brest le 3 mai 1998 pour voter le budget.", 27),
        ("0123456789 9876543210", 21),
    ],
)
def test_the_estimate_overcounts_the_smollm2_tokenizer(text: str, smollm2_tokens: int) -> None:
    assert smollm2_tokens <= estimate_tokens(text) <= 2 * smollm2_tokens


def test_the_counter_asks_the_tokenizer_and_stops_asking_a_broken_one() -> None:
    words_binding = Words()
    counter = TokenCounter(words_binding)
    assert counter.count("one two three") == 3 and counter.exact

    class Broken:
        def tokenize(self, text: str) -> None:
            return None  # the backend has no tokenizer

    broken = TokenCounter(Broken())
    assert broken.count("one two three") == estimate_tokens("one two three")
    assert not broken.exact


def test_the_guard_stops_a_loop_early() -> None:
    guard = RunawayGuard()
    text = "- The harbour opened in 1950.\n" + "- and then the boats came back and " * 40
    stopped_at = None
    for i in range(0, len(text), 3):
        if guard.feed(text[i : i + 3]):
            stopped_at = i
            break
    assert stopped_at is not None and stopped_at < 400
    assert guard.text_before_loop() == "- The harbour opened in 1950."


def test_the_guard_lets_a_varied_answer_through() -> None:
    guard = RunawayGuard()
    text = "".join(f"- Point {i}: the board approved budget line {i * 37} for pier {i}.\n" for i in range(40))
    assert not any(guard.feed(text[i : i + 4]) for i in range(0, len(text), 4))
    assert guard.text_before_loop() == text


def test_key_points_drop_repeats_echoes_and_known_points() -> None:
    answer = (
        "- The harbour opened in 1950.\n"
        "* The harbour opened in 1950!\n"
        "1. Keep every name, number, date and place exactly as written\n"
        "- Ok.\n"
        "- Mayor Anne Kerlo signed the plan.\n"
        "- The ferry leaves at 9."
    )
    points = key_points(
        answer,
        known={"the ferry leaves at 9"},
        echo=["Keep every name, number, date and place exactly as written"],
    )
    assert points == ["The harbour opened in 1950.", "Mayor Anne Kerlo signed the plan."]
    assert key_points("The harbour opened in 1950. Mayor Anne Kerlo signed.") == [
        "The harbour opened in 1950.",
        "Mayor Anne Kerlo signed.",
    ]


def test_degenerate_answers() -> None:
    loop = "the boats came back " * 20
    assert is_degenerate(loop, key_points(loop))
    assert is_degenerate("", [])
    good = "- The harbour opened in 1950.\n- Mayor Anne Kerlo signed the plan on 3 May."
    assert not is_degenerate(good, key_points(good))


def test_the_text_bar_line() -> None:
    event = ProgressEvent("chunk", 5, 11, 5, 10, 38.4, 80.0, 12.0)
    assert describe(event, 10) == "[#####.....]  chunk 5/10  38 tok/s  1:20 left"
    done = ProgressEvent("done", 11, 11, 10, 10, 40.0, 0.0, 95.25)
    assert describe(done, 4) == "[####]  chunk 10/10  40 tok/s  done in 95.2 s"


def test_key_facts_take_turns_across_parts_and_skip_what_is_written() -> None:
    notes = [
        "- The harbour opened in 1950.\n- It was a fine day.\n- Mayor Anne Kerlo signed the plan.",
        "- The ferry to Ushant leaves at 9.\n- the ferry to ushant leaves at 9",
        "",
        "- Nothing here names anything.",
    ]
    facts = key_facts(notes, 1000, estimate_tokens, written="Summary: Mayor Anne Kerlo signed the plan.")
    assert facts == ["The harbour opened in 1950.", "The ferry to Ushant leaves at 9."]
    assert key_facts(notes, estimate_tokens("The harbour opened in 1950.") + 2, estimate_tokens) == [
        "The harbour opened in 1950."
    ]
