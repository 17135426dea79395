"""Summaries of documents longer than the model's context.

::

    from lollms_magics.summaries import summarize
    result = summarize("report.pdf", binding, format="five bullet points")
    print(result.text, result.calls, result.wall_time)

SOURCE is text, a list of texts, a DataFrame, a file (.txt/.md read
directly; DOCX, PPTX, XLSX, HTML through docling from the ``docs`` extra;
PDF through docling's full pipeline when its models are on the machine,
else its text layer), a folder, a glob or an ``http(s)`` URL.

The document is cut into chunks that fit the context (token-aware, at
headings, paragraphs or sentences), and summarized by one of two methods:

* ``"map-reduce"`` (the default, also what ``"auto"`` picks): notes on each
  chunk independently, up to ``concurrency`` requests at once per binding,
  spread over several bindings when given, then merged in as many rounds as
  the context needs, then one final call;
* ``"sequential"``: the chunks in order, each read with the most recent
  notes, into a bounded memory of key points, then one final call.

Why map-reduce is the default: on a one-slot local server, the wall time is
the server's compute time for the tokens read and written. Map-reduce reads
the document once plus a short prompt per chunk and writes only the notes;
sequential also re-reads part of its memory with every chunk, which leaves
less room for text, so it makes more calls and reads more tokens for the
same notes. Measured on the benchmark's 25,271-word document against
llama-cpp-python's server (SmolLM2-135M, n_ctx 4096, one slot, on a
heavily shared 2-core machine): map-reduce made 15 calls, sent 1.11 times
the document in prompt tokens and wrote 2,208 tokens in 859 s; sequential
made 22 calls, sent 1.50 times and wrote 4,078 tokens in 1,382 s; on a
fixed-delay extractive loopback server, 1.07x against 1.26x and 40 against
14 facts kept (``benchmarks/README.md``). Both ask every call for names,
numbers, dates and places explicitly and never carry a broken answer
forward. With several hosts or a server that batches, only map-reduce runs
in parallel.

Notes are bounded in proportion to their part (about 1/32 of its tokens,
:meth:`.budget.Budget.notes_for`), so the notes of the whole document
usually fit the final call without merging, and what a note copied from its
part is dropped before the notes are merged (:mod:`.copies`). Without
``format``, the summary ends with key facts from every part in proportion,
taken from the notes and from each part's own sentences with its most
particular names and numbers (:mod:`.facts`); with a format, the model's
text is the whole summary.

A document that fits one request is summarized by that request alone.
Large deployments: point the ``openai`` binding at a vLLM cluster or an
OpenAI-compatible gateway and raise ``concurrency``; several separate
servers are given as a list of bindings (``--hosts`` in the magic).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import BindingError, InvalidOptionError
from ..options import validate_options
from .budget import DEFAULT_CTX_SIZE, plan_budget
from .calls import Caller, Cancelled
from .chunking import chunk_text
from .document import Document
from .hosts import Host
from .mapreduce import map_reduce
from .progress import ProgressCallback, ProgressEvent, TextBar, Tracker
from .result import Summary
from .resume import CallCache
from .sequential import sequential
from .sources import load_source
from .tokens import TokenCounter
from .work import Work, as_bullets, single_call

__all__ = ["MODES", "Document", "ProgressEvent", "Summary", "TextBar", "load_source", "summarize"]

MODES = ("auto", "sequential", "map-reduce")


def summarize(
    source: Any,
    bindings: Any,
    *,
    mode: str = "auto",
    instruction: str | None = None,
    format: str | None = None,
    ctx_size: int | None = None,
    chunk_size: int | None = None,
    overlap: int | None = None,
    concurrency: int = 1,
    n_predict: int | None = None,
    temperature: float | None = None,
    progress: ProgressCallback | None = None,
    resume: bool | str = True,
    stream: Callable[[str], None] | None = None,
    on_call: Callable[[Any], None] | None = None,
) -> Summary:
    """Summarize ``source`` with ``bindings`` (one binding, or a list of them: several hosts).

    Parameters
    ----------
    mode:
        ``"auto"`` (map-reduce), ``"map-reduce"`` or ``"sequential"``.
    instruction:
        What to look for in each chunk (default: its key points).
    format:
        The final summary's form ("three bullet points", "a table"...).
    ctx_size:
        The model's context in tokens (default: what the binding knows,
        else 2048). When given, it is also sent with every call to the
        backends that take a window size (Ollama's ``num_ctx``, the embedded
        model); for the others a notice says that their server's own window
        must hold it.
    chunk_size, overlap:
        Tokens per chunk (at most what the context allows) and carried over
        between chunks (default 0).
    concurrency:
        Requests in flight at once per binding (map-reduce).
    n_predict:
        The final summary's length limit in tokens.
    temperature:
        Sent with every call when given.
    progress:
        Called with a :class:`ProgressEvent` after each step.
    resume:
        True: finished steps are remembered in memory, so a re-run after
        an interrupt resumes; a folder: also on disk; False: neither.
    stream:
        Called with each piece of the final summary as it arrives.
    on_call:
        Called with each model call's :class:`~lollms_magics.response.Response`
        once it ended (a session adds it to its usage); answers reused from
        an earlier run make no call.

    Bad input (a missing or unreadable file, a bad option, a context too
    small) raises at once, before any request. An interrupt or a backend
    failure during the work returns what was done, with ``complete=False``.
    """
    started = time.perf_counter()
    hosts = _hosts(bindings, concurrency)
    _check(mode, temperature, n_predict, ctx_size)
    document = load_source(source)
    counter = TokenCounter(hosts[0].binding)
    counter.calibrate(document.text)
    chosen = "sequential" if mode == "sequential" else "map-reduce"
    budget = plan_budget(
        counter,
        ctx_size or _known_context(hosts) or DEFAULT_CTX_SIZE,
        sequential=chosen == "sequential",
        chunk_size=chunk_size,
        overlap=overlap,
        n_predict=n_predict,
        instruction=instruction,
        output_format=format,
    )
    document_tokens = counter.estimate(document.text)
    whole = document_tokens <= budget.final_input and chunk_size is None
    chunks = (
        [document.text] if whole else list(chunk_text(document.text, budget.chunk, counter, budget.overlap))
    )
    # A window asked for is sent with every call (Ollama's num_ctx, the embedded model's n_ctx):
    # the parts were planned for it, and a server keeping a smaller one would cut them silently.
    caller = Caller(counter, CallCache(resume), temperature, {"ctx_size": ctx_size} if ctx_size else None)
    tracker = Tracker(progress, len(chunks), lambda: caller.figures.completion_tokens)
    if whole:
        tracker.total = tracker.chunk = 1  # one call reads the chunk and writes the summary
    work = Work(
        hosts,
        caller,
        budget,
        tracker,
        instruction,
        format,
        stream,
        document=document.text,
        document_tokens=document_tokens,
    )
    result = Summary(
        "", mode=chosen, chunks=len(chunks), source=document.name, notices=list(document.notices)
    )

    def notice(message: str) -> None:  # a host that cannot take the window (said once per host)
        result.notices.append(message)
        tracker.emit("notice", message)

    caller.on_notice = notice
    caller.on_call = on_call
    result.document_tokens = document_tokens
    _run(work, result, chunks, whole)
    result.wall_time = time.perf_counter() - started
    tracker.emit("done" if result.complete else "stopped", result.error or "")
    return result


def _run(work: Work, result: Summary, chunks: list[str], whole: bool) -> None:
    """Do the work into ``result``; an interrupt or a backend failure leaves it incomplete."""
    for notice in result.notices:
        work.tracker.emit("notice", notice)
    notes: dict[int, str] = {}
    memory: list[str] = []
    try:
        if whole:
            result.text = single_call(work, chunks[0]).text
        elif result.mode == "sequential":
            result.text = sequential(work, chunks, memory)
        else:
            result.text = map_reduce(work, chunks, notes)
    except (KeyboardInterrupt, Cancelled, BindingError) as exc:
        work.caller.stop()
        result.complete = False
        result.error = str(exc) or "interrupted"
        result.text = work.final_text or _notes_so_far(notes, memory)
    result.steps = work.steps or [notes[i] for i in sorted(notes)]
    figures = work.caller.figures
    result.calls, result.cached, result.looped = figures.calls, figures.cached, figures.looped
    result.prompt_tokens, result.completion_tokens = figures.prompt_tokens, figures.completion_tokens


def _hosts(bindings: Any, concurrency: int) -> list[Host]:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidOptionError(f"concurrency must be a whole number of at least 1, not {concurrency!r}")
    items: Sequence[Any] = bindings if isinstance(bindings, (list, tuple)) else [bindings]
    if not items or not all(callable(getattr(b, "generate", None)) for b in items):
        raise InvalidOptionError("summarize needs a binding (or a list of bindings) to ask")
    for binding in items:
        _ = getattr(binding, "client", None)  # open each HTTP client before threads share it
    # The embedded model writes one answer at a time (it refuses a second at once).
    return [Host(b, 1 if getattr(b, "name", "") == "llamacpp" else concurrency) for b in items]


def _check(mode: str, temperature: float | None, n_predict: int | None, ctx_size: int | None) -> None:
    if mode not in MODES:
        raise InvalidOptionError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    options: dict[str, Any] = {} if ctx_size is None else {"ctx_size": ctx_size}
    if temperature is not None:
        options["temperature"] = temperature
    if n_predict is not None:
        options["n_predict"] = n_predict
    validate_options(options)


def _known_context(hosts: list[Host]) -> int | None:
    """The smallest context the bindings know of themselves (every request must fit all of them)."""
    sizes = [
        s for s in (getattr(h.binding, "context_size", None) for h in hosts) if isinstance(s, int) and s > 0
    ]
    return min(sizes) if sizes else None


def _notes_so_far(notes: dict[int, str], memory: list[str]) -> str:
    if memory:
        return as_bullets(memory)
    return "\n".join(notes[i] for i in sorted(notes) if notes[i])
