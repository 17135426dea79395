"""What SOURCE is, turned into a :class:`~lollms_magics.summaries.document.Document`.

A source is text (a string, a list of strings), a table (anything with
``to_csv``, e.g. a pandas DataFrame), a file path, a folder (its supported
files, sorted), a glob (``"notes/*.md"``), an ``http(s)`` URL, a Document, a
docling document, or anything else with a sensible ``str()``.

A string is a path when it is one line, short, and names an existing file,
has a file suffix, or holds glob characters; otherwise it is the text itself.
So ``"report.pdf"`` that does not exist is reported as a missing file rather
than summarized as eleven characters.

Every failure is a :class:`~lollms_magics.errors.DocumentError` (or
:class:`~lollms_magics.errors.MissingDependencyError`) with one line saying
what is wrong and what to do.
"""

from __future__ import annotations

import glob as globlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import DocumentError
from .convert import DOCLING_SUFFIXES, convert_bytes, convert_with_docling, read_pdf
from .document import Document

__all__ = ["SUPPORTED_SUFFIXES", "TEXT_SUFFIXES", "load_source"]

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ".text", ".csv", ".tsv", ".json", ".log"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | DOCLING_SUFFIXES | {".pdf"}
_SUFFIX_RE = re.compile(r"\.[A-Za-z0-9]{1,8}$")
_URL_RE = re.compile(r"^https?://\S+$")
_MAX_PATH_LENGTH = 1024
_MAX_DOWNLOAD = 200 * 1024 * 1024  # bytes; a summary of more would take days anyway


def load_source(source: Any) -> Document:
    """Read ``source`` into a Document; raises DocumentError with one line when it cannot."""
    if isinstance(source, Document):
        document = source
    elif isinstance(source, Path):
        document = _load_path_like(str(source))
    elif isinstance(source, str):
        document = _load_string(source)
    elif isinstance(source, (list, tuple)) and all(isinstance(s, (str, Path)) for s in source):
        document = _load_list(list(source))
    elif hasattr(source, "export_to_markdown"):  # a docling DoclingDocument
        document = Document(str(source.export_to_markdown()), "document")
    elif hasattr(source, "to_csv"):  # a pandas (or compatible) DataFrame: one row per line
        document = Document(str(source.to_csv(index=False)), "table")
    else:
        document = Document(str(source), type(source).__name__)
    if not document.text.strip():
        raise DocumentError(f"{document.name} is empty: there is nothing to summarize")
    return document


def _load_string(source: str) -> Document:
    stripped = source.strip()
    if _URL_RE.match(stripped):
        return _load_url(stripped)
    if _looks_like_path(stripped):
        return _load_path_like(stripped)
    return Document(source, "text")


def _looks_like_path(text: str) -> bool:
    if not text or "\n" in text or len(text) > _MAX_PATH_LENGTH:
        return False
    if any(c in text for c in "*?[") or os.path.exists(os.path.expanduser(text)):
        return True
    return " " not in text and bool(_SUFFIX_RE.search(text))


def _load_list(items: list[str | Path]) -> Document:
    paths = [str(i) for i in items if isinstance(i, Path) or _looks_like_path(str(i).strip())]
    if paths and len(paths) == len(items):
        return _join([_load_path_like(p) for p in paths], f"{len(paths)} sources")
    # Texts: each item its own paragraph, so the chunker may break between them.
    return Document("\n\n".join(str(i) for i in items), f"{len(items)} texts")


def _load_path_like(text: str) -> Document:
    expanded = os.path.expanduser(text)
    if any(c in expanded for c in "*?[") and not os.path.exists(expanded):
        matches = sorted(globlib.glob(expanded, recursive=True))
        files = [Path(m) for m in matches if Path(m).is_file()]
        if not files:
            raise DocumentError(f"no file matches {text}")
        return _load_files(files, text)
    path = Path(expanded)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _visible(p, path) and _supported(p))
        if not files:
            raise DocumentError(
                f"folder {text} has no file to summarize (supported: {', '.join(sorted(SUPPORTED_SUFFIXES))})"
            )
        return _load_files(files, text)
    if not path.exists():
        raise DocumentError(f"file not found: {text}")
    return load_file(path)


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def _supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def _load_files(files: Iterable[Path], name: str) -> Document:
    """Several files as one document, each under a heading with its name."""
    parts: list[Document] = []
    notices: list[str] = []
    for path in files:
        try:
            document = load_file(path)
        except DocumentError as exc:
            # One bad file does not lose the others; the user is told which was skipped.
            notices.append(f"skipped {path}: {exc}")
            continue
        document.text = f"# {path.name}\n\n{document.text.strip()}"
        parts.append(document)
    if not parts:
        raise DocumentError(f"no readable file in {name}: {notices[0] if notices else 'none found'}")
    joined = _join(parts, name)
    joined.notices[:0] = notices
    return joined


def _join(parts: list[Document], name: str) -> Document:
    notices = [n for p in parts for n in p.notices]
    return Document("\n\n".join(p.text for p in parts), name, notices)


def load_file(path: Path) -> Document:
    """One file, by its suffix: text read directly, office and HTML through docling, PDF apart."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DocumentError(f"file not found: {path}")
    notices: list[str] = []
    if suffix in DOCLING_SUFFIXES:
        text = convert_with_docling(path)
    elif suffix == ".pdf":
        text = read_pdf(path, notices)
    elif suffix in TEXT_SUFFIXES or _is_text(path):
        text = _read_text(path)
    else:
        raise DocumentError(
            f"cannot summarize {path.name}: unsupported file type {suffix or '(no suffix)'} "
            f"(supported: {', '.join(sorted(SUPPORTED_SUFFIXES))})"
        )
    if not text.strip():
        raise DocumentError(f"{path.name} is empty: there is nothing to summarize")
    return Document(text, path.name, notices)


def _is_text(path: Path) -> bool:
    """True for a file without a known suffix whose first 4 kB decode as UTF-8 and hold no NUL."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # only a character cut by the 4 kB limit
    return True


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise DocumentError(f"cannot read {path.name}: it is a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Not UTF-8: latin-1 decodes any byte, which is right for most legacy text files.
        return data.decode("latin-1")


def _load_url(url: str) -> Document:
    import httpx

    from ..transport.client import make_client

    try:
        with make_client(url, connect_timeout=10.0, read_timeout=30.0, follow_redirects=True) as client:
            response = client.get(url)
    except httpx.HTTPError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DocumentError(f"cannot fetch {url} ({reason}); check the address and the network") from None
    if response.status_code >= 400:
        raise DocumentError(f"{url} answered HTTP {response.status_code}; check the address")
    data = response.content
    if len(data) > _MAX_DOWNLOAD:
        raise DocumentError(
            f"{url} is larger than {_MAX_DOWNLOAD // 2**20} MB; download it and give the file"
        )
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    name = url.rstrip("/").rsplit("/", 1)[-1] or "page"
    return _url_document(data, kind, name, url, response.encoding or "utf-8")


def _url_document(data: bytes, kind: str, name: str, url: str, encoding: str) -> Document:
    suffix = Path(name).suffix.lower()
    if kind == "application/pdf" or suffix == ".pdf":
        return _downloaded(data, ".pdf", url)
    if kind in ("text/html", "application/xhtml+xml") or suffix in (".html", ".htm"):
        return Document(convert_bytes(data, "page.html"), url)
    if suffix in DOCLING_SUFFIXES:
        return _downloaded(data, suffix, url)
    if kind.startswith("text/") or kind in ("application/json", "") or suffix in TEXT_SUFFIXES:
        return Document(data.decode(encoding, errors="replace"), url)
    raise DocumentError(f"cannot summarize {url}: unsupported content type {kind}")


def _downloaded(data: bytes, suffix: str, url: str) -> Document:
    """A downloaded binary document, read through a temporary file (the converters want paths)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"download{suffix}"
        path.write_bytes(data)
        document = load_file(path)
    document.name = url
    document.notices = [n.replace(path.name, url) for n in document.notices]
    return document
