"""Texts longer than the context: ``sequential_summarize`` and ``long_context_processing``.

Both run on the summarizer (:meth:`Session.summarize`, the same calls and
figures as ``%lollms summarize``); ``lc.last_summary`` keeps the figures of
the last run (calls, tokens, time).

``long_context_processing(text_to_process, contextual_prompt, ...)``
(lollms-client 1.x) takes the arguments of its versions:
``context_fill_percentage`` (0.1 to 0.9, else ``ValueError`` as there: the
share of the window a part may fill), ``expected_generation_tokens`` (the
answer's length limit), ``overlap_tokens``, ``ctx_size``,
``streaming_callback``, ``return_scratchpad_only`` (the notes on the parts
instead of the final answer), ``system_prompt`` (added to the task), and
accepts the others (``max_scratchpad_tokens``,
``scratchpad_compression_threshold``, ``processing_type``,
``chunk_size_ratio``, ``overlap_ratio``, ``debug``): the notes are bounded by
the summarizer's own budget. The parts are read in map-reduce, each for
what serves the task, and the answer is written from all the notes.

The callback hears lollms-client's step messages: ``MSG_TYPE_STEP`` "Content
fits in a single pass" for a text that fits; else ``MSG_TYPE_STEP_START``
"Processing chunk 2/5" (``{"step", "total_steps", "progress"}``) and
``MSG_TYPE_STEP_END`` "Step 2 completed" for each part; then
``MSG_TYPE_STEP_START`` "Synthesizing final response..." (``{"progress":
95}``) and ``MSG_TYPE_STEP_END`` "Final synthesis complete" (``{"progress":
100}``); a failure as ``MSG_TYPE_EXCEPTION``. A callback returning ``False``
at a step stops the work. Failures return a string starting with
``"Error: "``, as ``sequential_summarize`` does.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import LollmsMagicsError, LollmsMagicsWarning
from .callbacks import Callback, failure, one_line, stops
from .enums import MSG_TYPE
from .room import ClientRoom
from .summary import SummaryArguments, run_sequential_summarize

if TYPE_CHECKING:
    from ..summaries import ProgressEvent

__all__ = ["LongTexts"]

# Arguments of lollms-client's versions that the summarizer's own budget replaces.
_ACCEPTED = frozenset({
    "max_scratchpad_tokens", "scratchpad_compression_threshold", "processing_type", "chunk_size_ratio",
    "overlap_ratio", "strategy_override", "synthesis_prompt", "debug",
})


class LongTexts(ClientRoom):
    """The long-text calls of :class:`~lollms_magics.compat.client.LollmsClient`."""

    def sequential_summarize(self, *args: Any, **kwargs: Any) -> str:
        """Summarize a text longer than the context, chunk by chunk with a memory; returns the summary.

        Takes lollms-client's arguments (``text, chunk_processing_prompt,
        chunk_processing_output_format, final_memory_processing_prompt,
        final_output_format, ctx_size, chunk_size, overlap,
        bootstrap_chunk_size, bootstrap_steps, callback, debug``) and the
        course's (``full_text_content``, ``instruction_prompt``,
        ``output_format_prompt``, ``context_size``); see
        :mod:`lollms_magics.compat.summary`. Failures return ``"Error: ..."``;
        :attr:`last_summary` keeps the figures (calls, tokens, time).
        """
        from ..core.session import Session

        arguments = SummaryArguments(args, kwargs)
        try:  # the rule of every prompt: a text holding a key is not sent
            self.keys.refuse(str(arguments.text), "the text to summarize")
        except LollmsMagicsError as exc:
            failure(exc, arguments.callback, self.keys.redact)
            return f"Error: {exc}"
        text, self.last_summary = run_sequential_summarize(
            Session.binding(self), arguments, self.default_n_predict, self.default_temperature,
            self.default_ctx_size, self.keys.redact,
        )
        return text

    def long_context_processing(
        self,
        text_to_process: str,
        contextual_prompt: str | None = None,
        system_prompt: str | None = None,
        context_fill_percentage: float = 0.75,
        overlap_tokens: int = 0,
        expected_generation_tokens: int = 1500,
        streaming_callback: Callback | None = None,
        return_scratchpad_only: bool = False,
        ctx_size: int | None = None,
        images: Any = None,
        **kwargs: Any,
    ) -> str:
        """Do ``contextual_prompt``'s task on a text longer than the context; the answer (see the module)."""
        from ..core.history import estimate_tokens
        from ..core.session import Session
        from ..summaries.calls import Cancelled

        if not 0.1 <= context_fill_percentage <= 0.9:
            raise ValueError(
                f"context_fill_percentage must be between 0.1 and 0.9, got {context_fill_percentage}"
            )
        unknown = sorted(set(kwargs) - _ACCEPTED - {"temperature", "n_predict"})
        if unknown:
            raise TypeError(
                f"long_context_processing got unexpected keyword argument(s): {', '.join(unknown)}"
            )
        if images:
            warnings.warn("long_context_processing reads text only here; the images are not sent",
                          LollmsMagicsWarning, stacklevel=2)
        callback = streaming_callback
        task = contextual_prompt or "Summarize the text: its key facts, concepts and conclusions."
        if system_prompt:
            task = f"{system_prompt.strip()}\n{task}"
        window = ctx_size or self.default_ctx_size or Session.binding(self).context_size or 8192
        part: int | None = max(int(window * context_fill_percentage) - expected_generation_tokens, 256)
        if estimate_tokens(text_to_process) <= (part or 0):
            part = None  # it fits: the summarizer reads it whole, in one call (lollms-client's single pass)
        try:
            result = self.summarize(
                text_to_process, instruction=task, format=f"the answer to this request ({task.strip()})",
                ctx_size=window, chunk_size=part, overlap=overlap_tokens or None,
                n_predict=expected_generation_tokens, temperature=kwargs.get("temperature"),
                progress=_steps(callback), resume=False,
            )
        except (LollmsMagicsError, Cancelled) as exc:
            return _error(exc, callback, self.keys.redact)
        self.last_summary = result
        if not result.complete:
            return _error(LollmsMagicsError(result.error or "the processing did not finish"), callback,
                          self.keys.redact)
        if return_scratchpad_only:
            return "\n\n---\n\n".join(step.strip() for step in result.steps).strip()
        return result.text.strip()


def _error(exc: BaseException, callback: Callback | None, redact: Callable[[str], str]) -> str:
    failure(exc, callback, redact)
    return f"Error: {one_line(redact(str(exc)))}"


def _steps(callback: Callback | None) -> Callable[[ProgressEvent], None]:
    """A summarizer progress callback that speaks long_context_processing's step messages."""
    from ..summaries.calls import Cancelled

    started: set[int] = set()
    said: set[str] = set()

    def send(message: str, kind: MSG_TYPE, params: dict[str, Any]) -> None:
        if callback is not None and stops(callback(message, kind, params)):
            raise Cancelled("stopped by the callback")

    def begin(chunk: int, chunks: int) -> None:
        if chunk <= chunks and chunk not in started:
            started.add(chunk)
            send(f"Processing chunk {chunk}/{chunks}", MSG_TYPE.MSG_TYPE_STEP_START,
                 {"step": chunk, "total_steps": chunks, "progress": round(90.0 * (chunk - 1) / chunks, 1)})

    def report(event: ProgressEvent) -> None:
        if event.phase == "notice" and callback is not None:
            callback(event.message, MSG_TYPE.MSG_TYPE_INFO)
        elif event.phase == "start":
            begin(1, event.chunks)
        elif event.phase == "chunk":
            send(f"Step {event.chunk} completed", MSG_TYPE.MSG_TYPE_STEP_END,
                 {"progress": round(90.0 * event.chunk / event.chunks, 1)})
            begin(event.chunk + 1, event.chunks)
        elif event.phase == "final" and "final" not in said:  # sent as the call starts and ends
            said.add("final")
            if not started:
                send("Content fits in a single pass", MSG_TYPE.MSG_TYPE_STEP, {})
            else:
                send("Synthesizing final response...", MSG_TYPE.MSG_TYPE_STEP_START, {"progress": 95})
        elif event.phase == "done" and started and callback is not None:
            # The work is over: what the callback returns no longer matters.
            callback("Final synthesis complete", MSG_TYPE.MSG_TYPE_STEP_END, {"progress": 100})

    return report
