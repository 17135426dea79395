"""The text to summarize, once read: :class:`Document`.

Every source (a string, a file, a folder, a URL...) becomes one Document: its
text in Markdown-like form (headings as ``#`` lines, paragraphs separated by
blank lines, which the chunker uses as break points), a name for messages,
and the notices gathered while reading it (a PDF read without its layout
model, a file of a folder that was skipped...). The text is held once; the
chunker walks it without copying it per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Document"]


@dataclass
class Document:
    """A document ready to be chunked.

    Attributes
    ----------
    text:
        The whole text; headings are Markdown ``#`` lines.
    name:
        What it was read from (a file name, a URL, ``"text"``), for messages.
    notices:
        One-line remarks about how it was read, shown to the user.
    path:
        The file it was read from, if one (questions over documents watch it for changes).
    parts:
        The files' own Documents, when several files were joined (their text repeats this one's).
    pages:
        A PDF's pages, when its text layer gave them (questions over documents cite them).
    """

    text: str
    name: str = "text"
    notices: list[str] = field(default_factory=list)
    path: str | None = None
    parts: list[Document] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.text)
