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

Everything read from outside is bounded, and measured before it is read: a
file by its size on disk, a folder or glob by its number of files and their
total size, a URL by its announced length and then by the bytes counted as
they arrive (the download stops at the limit) and by an overall time. The
limits are the module's constants below; a refusal names the one to raise.
"""

from __future__ import annotations

import glob as globlib
import itertools
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DocumentError
from .convert import DOCLING_SUFFIXES, convert_bytes, convert_with_docling, read_pdf
from .document import Document

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DOWNLOAD_DEADLINE",
    "MAX_FOLDER_BYTES",
    "MAX_FOLDER_FILES",
    "MAX_SOURCE_BYTES",
    "SUPPORTED_SUFFIXES",
    "TEXT_SUFFIXES",
    "load_file",
    "load_source",
]

TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".rst", ".text", ".csv", ".tsv", ".json", ".log"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | DOCLING_SUFFIXES | {".pdf"}
_SUFFIX_RE = re.compile(r"\.[A-Za-z0-9]{1,8}$")
_URL_RE = re.compile(r"^https?://\S+$")
_MAX_PATH_LENGTH = 1024

# The limits. A summary of 200 MB of text would take days on a local server anyway.
MAX_SOURCE_BYTES = 200 * 2**20
"""Bytes of one file or one download."""
MAX_FOLDER_FILES = 2000
"""Files of a folder or a glob."""
MAX_FOLDER_BYTES = 200 * 2**20
"""Bytes of all the files of a folder or a glob together."""
DOWNLOAD_DEADLINE = 300.0
"""Seconds a URL may take, from the request to its last byte."""
_HERE = "lollms_magics.summaries.sources"


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
        matches = (Path(m) for m in globlib.iglob(expanded, recursive=True))
        files = _bounded((p for p in matches if p.is_file()), f"{text} matches")
        if not files:
            raise DocumentError(f"no file matches {text}")
        return _load_files(files, text)
    path = Path(expanded)
    if path.is_dir():
        files = _bounded(_folder_files(path), f"folder {text} holds")
        if not files:
            raise DocumentError(
                f"folder {text} has no file to summarize (supported: {', '.join(sorted(SUPPORTED_SUFFIXES))})"
            )
        return _load_files(files, text)
    if not path.exists():
        raise DocumentError(f"file not found: {text}")
    return load_file(path)


def _folder_files(root: Path) -> Iterator[Path]:
    """The supported files under ``root``, hidden files and folders left out (and not walked)."""
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        for name in names:
            path = Path(folder) / name
            if not name.startswith(".") and _supported(path) and path.is_file():
                yield path


def _bounded(files: Iterable[Path], what: str) -> list[Path]:
    """``files`` sorted, refused as soon as there are too many of them or they are too large together.

    Sizes come from the file system: nothing is read here, and a walk of a
    huge tree stops at the first file past the limit.
    """
    most, room = MAX_FOLDER_FILES, MAX_FOLDER_BYTES
    kept = list(itertools.islice(files, most + 1))
    if len(kept) > most:
        raise DocumentError(
            f"{what} more than {most:,} files to summarize ({_HERE}.MAX_FOLDER_FILES); "
            "choose fewer with a glob, or raise that limit"
        )
    if sum(_size_of(p) for p in kept) > room:
        raise DocumentError(
            f"{what} more than {_amount(room)} to summarize ({_HERE}.MAX_FOLDER_BYTES); "
            "choose fewer files with a glob, or raise that limit"
        )
    return sorted(kept)


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # gone or unreadable: reading it says so, and the others are still read


def _amount(size: int) -> str:
    """``size`` bytes for a message: "200 MB", "1.5 MB", "700 kB", "12 bytes"."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if size % scale == 0 or value >= 100 else f"{value:.1f} {unit}"
    return f"{size} bytes"


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
    files = [q for p in parts for q in p.parts or [p]]  # each file's own Document, for questions
    return Document("\n\n".join(p.text for p in parts), name, notices, parts=files)


def load_file(path: Path) -> Document:
    """One file, by its suffix: text read directly, office and HTML through docling, PDF apart."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DocumentError(f"file not found: {path}")
    size = _size_of(path)
    if size > MAX_SOURCE_BYTES:
        raise DocumentError(
            f"{path.name} is {_amount(size)}, more than {_amount(MAX_SOURCE_BYTES)} "
            f"({_HERE}.MAX_SOURCE_BYTES); summarize a part of it, or raise that limit"
        )
    notices: list[str] = []
    pages: list[str] = []
    if suffix in DOCLING_SUFFIXES:
        text = convert_with_docling(path)
    elif suffix == ".pdf":
        text = read_pdf(path, notices, pages)
    elif suffix in TEXT_SUFFIXES or _is_text(path):
        text = _read_text(path)
    else:
        raise DocumentError(
            f"cannot summarize {path.name}: unsupported file type {suffix or '(no suffix)'} "
            f"(supported: {', '.join(sorted(SUPPORTED_SUFFIXES))})"
        )
    if not text.strip():
        raise DocumentError(f"{path.name} is empty: there is nothing to summarize")
    return Document(text, path.name, notices, path=str(path), pages=pages)


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
    with path.open("rb") as handle:
        data = handle.read(MAX_SOURCE_BYTES + 1)  # a file growing since it was measured stops here
    if len(data) > MAX_SOURCE_BYTES:
        raise DocumentError(
            f"{path.name} is more than {_amount(MAX_SOURCE_BYTES)} ({_HERE}.MAX_SOURCE_BYTES); "
            "summarize a part of it, or raise that limit"
        )
    if b"\x00" in data[:4096]:
        raise DocumentError(f"cannot read {path.name}: it is a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Not UTF-8: latin-1 decodes any byte, which is right for most legacy text files.
        return data.decode("latin-1")


def _load_url(url: str) -> Document:
    """The document at ``url``, streamed within MAX_SOURCE_BYTES and DOWNLOAD_DEADLINE."""
    import httpx

    from ..transport.client import make_client

    deadline = DOWNLOAD_DEADLINE
    ends = time.monotonic() + deadline
    # No single wait may outlast the whole download's time.
    connect, read = min(10.0, deadline), min(30.0, deadline)
    try:
        # capped=False: _download counts the body against MAX_SOURCE_BYTES itself.
        client = make_client(url, connect_timeout=connect, read_timeout=read, follow_redirects=True,
                             capped=False)
        with client, client.stream("GET", url) as response:
            if response.status_code >= 400:
                raise DocumentError(f"{url} answered HTTP {response.status_code}; check the address")
            data = _download(response, url, ends)
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            encoding = response.encoding or "utf-8"
    except httpx.TimeoutException as exc:
        if time.monotonic() >= ends:
            raise _late(url) from None
        raise _unreachable(url, exc) from None
    except httpx.HTTPError as exc:
        raise _unreachable(url, exc) from None
    name = url.rstrip("/").rsplit("/", 1)[-1] or "page"
    return _url_document(data, kind, name, url, encoding)


def _download(response: httpx.Response, url: str, ends: float) -> bytes:
    """The body of ``response``, refused by its announced length, then counted as it comes."""
    limit = MAX_SOURCE_BYTES
    announced = response.headers.get("content-length", "")
    if announced.isdigit() and int(announced) > limit:
        raise _too_large(url, limit)
    body = bytearray()
    for piece in response.iter_bytes():  # decoded bytes: a compressed bomb is counted as it grows
        if len(body) + len(piece) > limit:
            raise _too_large(url, limit)
        body += piece
        if time.monotonic() >= ends:  # a server trickling bytes never trips the read timeout
            raise _late(url)
    return bytes(body)


def _too_large(url: str, limit: int) -> DocumentError:
    return DocumentError(
        f"{url} is larger than {_amount(limit)} ({_HERE}.MAX_SOURCE_BYTES); "
        "download a part of it, or raise that limit"
    )


def _late(url: str) -> DocumentError:
    return DocumentError(
        f"{url} took more than {DOWNLOAD_DEADLINE:g} s to download ({_HERE}.DOWNLOAD_DEADLINE); "
        "download it and give the file, or raise that limit"
    )


def _unreachable(url: str, exc: Exception) -> DocumentError:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return DocumentError(f"cannot fetch {url} ({reason}); check the address and the network")


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
    document.name, document.path = url, None  # the temporary file is gone
    document.notices = [n.replace(path.name, url) for n in document.notices]
    return document
