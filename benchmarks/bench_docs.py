"""How often ``--docs`` sends the passage that answers, and how long indexing takes.

On the planted-facts document of ``bench_summarize.py`` (``make_document.py``:
about 25,000 words, 40 sections, one checkable fact each) one question is
asked per fact, naming the thing the fact is about but not the fact. The
passages are chosen exactly as ``Session.ask(question, docs=document)``
chooses them (:func:`lollms_magics.core.docs.prompt_with_docs`, a 4,096-token
window, no tokenizer: the cautious estimate), and a question is a hit when
the fact's sentence is whole in one of the passages sent. No model is asked.

With ``--answers``, the embedded model (SmolLM2 through llama-cpp-python)
answers each question from those passages (greedy, 48 tokens at most); an
answer is correct when it holds the fact's token (a place, a surname, a year)
as a whole word, as ``facts.py`` counts a kept fact. The prompt tokens are
llama.cpp's count.

Then the time to read, chunk and index (BM25, ``bm25s``) a document of 1,000
pages (500 words a page) and to answer the first and a second question.

    python benchmarks/bench_docs.py [--context 4096] [--pages 1000] [--answers]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facts import kept_tokens
from make_document import FACT_TEMPLATES, make_document

from lollms_magics.core.docs import prompt_with_docs
from lollms_magics.core.session import Session

# The question each fact template answers ({t}: the thing the section is about).
QUESTIONS = {
    FACT_TEMPLATES["place"][0]: "Where was the first {t} of the valley built?",
    FACT_TEMPLATES["place"][1]: "In which hamlet stood the finest {t} of the region?",
    FACT_TEMPLATES["person"][0]: "Which woman ran the {t} for thirty years?",
    FACT_TEMPLATES["person"][1]: "Which carpenter founded the {t}?",
    FACT_TEMPLATES["year"][0]: "In which year was the {t} first recorded in the parish books?",
    FACT_TEMPLATES["year"][1]: "In which year did the {t} open?",
}


class _Backend:
    """What prompt_with_docs reads of a binding: no known window, no tokenizer."""

    context_size = None


def question_for(sentence: str) -> str:
    for template, question in QUESTIONS.items():
        pattern = re.escape(template).replace(r"\{t\}", "(?P<t>.+?)").replace(r"\{x\}", r"\S+?")
        found = re.fullmatch(pattern, sentence)
        if found:
            return question.format(t=found.group("t"))
    raise ValueError(f"no question for {sentence!r}")


def hit_rate(context: int) -> dict[str, Any]:
    doc = make_document()
    session = Session(context_size=context)
    hits, sent_tokens = 0, []
    backend: Any = _Backend()
    for fact in doc.facts:
        prompt, passages = prompt_with_docs(session, backend, question_for(fact.sentence), None, {}, doc.text)
        hits += any(fact.sentence in p.text for p in passages)
        sent_tokens.append(len(prompt.split()))
    return {"facts": len(doc.facts), "hits": hits, "words_sent": sum(sent_tokens) / len(sent_tokens),
            "passages": len(passages)}


def answers(context: int, questions: int) -> dict[str, Any]:
    """Questions answered correctly by the embedded model from the passages sent, and prompt tokens."""
    doc = make_document()
    facts = doc.facts[:questions]
    session = Session("llamacpp", context_size=context)
    correct, prompt_tokens, seconds = 0, [], 0.0
    for fact in facts:
        start = time.perf_counter()
        answer = session.ask(question_for(fact.sentence), docs=doc.text, n_predict=48, temperature=0,
                             history=False)
        text = answer.text
        seconds += time.perf_counter() - start
        correct += bool(kept_tokens(text, [fact.token]))
        prompt_tokens.append(answer.prompt_tokens or 0)
        print(f"  {fact.token}: {'correct' if kept_tokens(text, [fact.token]) else 'wrong'}, "
              f"{answer.prompt_tokens} prompt tokens, {time.perf_counter() - start:.1f} s", flush=True)
    session.close()
    return {"facts": len(facts), "correct": correct, "seconds": seconds / len(facts),
            "prompt_tokens": sum(prompt_tokens) / len(prompt_tokens)}


def index_time(pages: int) -> dict[str, float]:
    doc = make_document(seed=9, words=500 * pages, sections=40)
    session = Session()
    backend: Any = _Backend()
    start = time.perf_counter()
    prompt_with_docs(session, backend, question_for(doc.facts[0].sentence), None, {}, doc.text)
    first = time.perf_counter() - start
    start = time.perf_counter()
    prompt_with_docs(session, backend, question_for(doc.facts[1].sentence), None, {}, doc.text)
    second = time.perf_counter() - start
    return {"words": float(doc.words), "first_s": first, "second_s": second}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--pages", type=int, default=1000, help="pages to index (at least 10; 0: none)")
    parser.add_argument("--answers", action="store_true", help="also ask the embedded model each question")
    parser.add_argument("--questions", type=int, default=40, help="with --answers: the first N facts only")
    args = parser.parse_args()
    rate = hit_rate(args.context)
    print(f"hit rate: {rate['hits']} / {rate['facts']} questions had the fact's sentence among the passages "
          f"sent ({args.context}-token window; about {rate['words_sent']:.0f} words sent per question)",
          flush=True)
    if args.answers:
        got = answers(args.context, args.questions)
        print(f"embedded model: {got['correct']} / {got['facts']} answered correctly; "
              f"{got['prompt_tokens']:.0f} prompt tokens and {got['seconds']:.1f} s per question")
    if args.pages <= 0:
        return
    timing = index_time(args.pages)
    print(f"{args.pages:,} pages ({timing['words']:,.0f} words): first question (read, chunk, index, rank) "
          f"{timing['first_s']:.1f} s, next question {timing['second_s']:.2f} s")


if __name__ == "__main__":
    main()
