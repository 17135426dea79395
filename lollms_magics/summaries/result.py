"""The result of a summary: :class:`Summary`."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Summary"]


@dataclass
class Summary:
    """A summary and how it was made.

    Attributes
    ----------
    text:
        The summary. After an interrupt or a failure: what the final call
        had written, or else the notes gathered so far.
    steps:
        The intermediate notes: per chunk (map-reduce), the new points of
        each chunk (sequential), then each merge.
    calls, cached:
        Requests sent, and steps answered from the resume cache instead.
    looped:
        Answers cut short because they started repeating themselves.
    prompt_tokens, completion_tokens:
        Tokens sent and written over all calls (the server's counts where
        it reports them, else estimates).
    wall_time:
        Seconds from the call to the end.
    chunks:
        How many chunks the document was cut into.
    mode:
        ``"map-reduce"`` or ``"sequential"``.
    complete:
        False after an interrupt or a failure; ``error`` then says why, and
        a re-run with the same source and options resumes.
    source:
        What was summarized (a file name, a URL, ``"text"``).
    notices:
        One-line remarks about the input (a PDF read without its layout
        model, a file of a folder that was skipped...).
    document_tokens:
        The document's size in tokens (as counted for chunking).
    """

    text: str
    steps: list[str] = field(default_factory=list)
    calls: int = 0
    cached: int = 0
    looped: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_time: float = 0.0
    chunks: int = 0
    mode: str = "map-reduce"
    complete: bool = True
    error: str | None = None
    source: str = "text"
    notices: list[str] = field(default_factory=list)
    document_tokens: int = 0

    def __str__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"incomplete: {self.error}"
        return (
            f"<Summary of {self.source}: {self.chunks} chunks, {self.mode}, {self.calls} calls, "
            f"{self.wall_time:.1f} s, {state}>"
        )
