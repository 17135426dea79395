"""``sequential_summarize`` in both spellings, on :func:`lollms_magics.summaries.summarize`.

lollms-client 0.9 to 1.9 named the arguments ``text``,
``chunk_processing_prompt``, ``chunk_processing_output_format``,
``final_memory_processing_prompt``, ``final_output_format``, ``ctx_size``,
``chunk_size``, ``overlap``, ``bootstrap_chunk_size``, ``bootstrap_steps``,
``callback``, ``debug``; the French course module writes ``full_text_content``,
``instruction_prompt``, ``output_format_prompt`` and ``context_size``, names no
published version had. Both are accepted (and the text and the chunk prompt
positionally, as lollms-client's examples pass them).

The work is done by the summarizer's sequential method (same calls, same
figures as ``summarize(..., mode="sequential")``): the chunk prompt becomes its
``instruction``, the final prompt and format its ``format``. Progress reaches
the callback as ``MSG_TYPE_STEP`` messages ("Processing chunk 2/5...",
"Aggregating final summary..."), the final summary's pieces as
``MSG_TYPE_CHUNK``; a callback returning ``False`` at a step stops the work.
``bootstrap_chunk_size`` and ``bootstrap_steps`` are accepted and unused: the
chunks are sized by the context budget, the first ones included.
``chunk_processing_output_format`` is unused too (the memory is a list of
key points). Like lollms-client, it never raises for a failure: it returns a
string starting with ``"Error: "``.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import LollmsMagicsError
from .callbacks import Callback, one_line, stops
from .enums import MSG_TYPE

if TYPE_CHECKING:
    from ..summaries import ProgressEvent, Summary

__all__ = ["SummaryArguments", "run_sequential_summarize"]

# lollms-client's defaults: given unchanged, they say nothing our prompts do not already say.
DEFAULT_CHUNK_PROMPT = (
    "Extract relevant information from the current text chunk and update the memory if needed."
)
DEFAULT_FINAL_PROMPT = "Create final summary using this memory."
# The course's names -> lollms-client's.
COURSE_NAMES = (
    ("full_text_content", "text"),
    ("instruction_prompt", "chunk_processing_prompt"),
    ("output_format_prompt", "final_memory_processing_prompt"),
    ("context_size", "ctx_size"),
)


class SummaryArguments:
    """The arguments of one call, whichever spelling they came in."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        names = ("text", "chunk_processing_prompt", "chunk_processing_output_format",
                 "final_memory_processing_prompt", "final_output_format", "ctx_size", "chunk_size",
                 "overlap", "bootstrap_chunk_size", "bootstrap_steps", "callback", "debug")
        if len(args) > len(names):
            raise TypeError(f"sequential_summarize takes at most {len(names)} positional arguments")
        given = dict(zip(names, args, strict=False))
        for course, client in COURSE_NAMES:
            if course in kwargs:
                if client in kwargs or client in given:
                    raise TypeError(f"sequential_summarize got both {course!r} and {client!r}")
                kwargs[client] = kwargs.pop(course)
        for name, value in kwargs.items():
            if name not in names:
                raise TypeError(f"sequential_summarize got an unexpected keyword argument {name!r}")
            if name in given:
                raise TypeError(f"sequential_summarize got multiple values for argument {name!r}")
            given[name] = value
        if "text" not in given:
            raise TypeError("sequential_summarize needs the text (text= or full_text_content=)")
        self.text: Any = given["text"]
        self.chunk_prompt = _prompt(given.get("chunk_processing_prompt"), DEFAULT_CHUNK_PROMPT)
        self.final_prompt = _prompt(given.get("final_memory_processing_prompt"), DEFAULT_FINAL_PROMPT)
        self.final_format: str = str(given.get("final_output_format") or "markdown")
        self.ctx_size: int | None = given.get("ctx_size")
        self.chunk_size: int | None = given.get("chunk_size")
        self.overlap: int | None = given.get("overlap")
        self.callback: Callback | None = given.get("callback")
        self.debug = bool(given.get("debug", False))

    @property
    def format(self) -> str | None:
        """The final summary's form, for the summarizer's final prompt."""
        wanted = "" if self.final_format.lower() == "markdown" else f"{self.final_format} text"
        if self.final_prompt and wanted:
            return f"{wanted}, following these instructions: {self.final_prompt}"
        return self.final_prompt or wanted or None


def _prompt(value: Any, default: str) -> str | None:
    if value is None:
        return None
    text = textwrap.dedent(str(value)).strip()
    return None if not text or text == default else text


def _progress(callback: Callback | None, debug: bool) -> Callable[[ProgressEvent], None]:
    """A summarizer progress callback that speaks lollms-client's step messages."""
    from ..summaries.calls import Cancelled

    def report(event: ProgressEvent) -> None:
        if debug:
            print(f"[sequential_summarize] {event.phase} {event.done}/{event.total} {event.message}",
                  file=sys.stderr)
        if callback is None:
            return
        if event.phase == "notice":
            callback(event.message, MSG_TYPE.MSG_TYPE_INFO)
            return
        message = {
            "start": f"Summarizing {event.chunks} chunk(s)...",
            "chunk": f"Processing chunk {event.chunk}/{event.chunks}...",
            "combine": "Combining notes...",
            "final": "Aggregating final summary...",
        }.get(event.phase)
        if message is None:
            return
        share = 100.0 * event.done / event.total if event.total else 0.0
        if stops(callback(message, MSG_TYPE.MSG_TYPE_STEP, {"progress": round(share, 1)})):
            raise Cancelled("stopped by the callback")

    return report


def run_sequential_summarize(binding: Any, arguments: SummaryArguments, n_predict: int | None,
                             temperature: float | None, ctx_default: int | None,
                             redact: Callable[[str], str]) -> tuple[str, Summary | None]:
    """Summarize; the text (or ``"Error: ..."``) and the summarizer's result with its figures."""
    from ..summaries import summarize

    callback = arguments.callback

    def stream(piece: str) -> None:
        if callback is not None:
            callback(piece, MSG_TYPE.MSG_TYPE_CHUNK)

    try:
        result = summarize(
            arguments.text, binding, mode="sequential", instruction=arguments.chunk_prompt,
            format=arguments.format, ctx_size=arguments.ctx_size or ctx_default,
            chunk_size=arguments.chunk_size, overlap=arguments.overlap, n_predict=n_predict,
            temperature=temperature, progress=_progress(callback, arguments.debug), resume=False,
            stream=stream,
        )
    except LollmsMagicsError as exc:
        message = one_line(redact(str(exc)))
        if callback is not None:
            callback(message, MSG_TYPE.MSG_TYPE_EXCEPTION)
        return f"Error: {message}", None
    if not result.complete:
        message = one_line(redact(result.error or "the summary did not finish"))
        if callback is not None:
            callback(message, MSG_TYPE.MSG_TYPE_EXCEPTION)
        return f"Error: {message}", result
    return result.text, result
