"""File formats that need a converter: DOCX, PPTX, XLSX, HTML through docling, and PDF.

docling comes from the ``docs`` extra (``docling-slim`` with its format
extras, about 475 MB and no torch); it is imported here, on the first file
that needs it, never when lollms_magics is imported (it costs 1.6 s).

PDF: docling's full pipeline (headings, tables, OCR) needs torch and layout
weights fetched once from Hugging Face. It is used only when both are
present; otherwise the PDF's own text layer is read with pypdfium2 (a
dependency of the ``docs`` extra; 0.04 s for 50 pages) and a notice says
which model is missing and how to fetch it. A PDF without a text layer is
reported as scanned instead of being sent to the model empty.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import os
from pathlib import Path
from typing import Any

from ..errors import DocumentError, MissingDependencyError

__all__ = [
    "DOCLING_SUFFIXES",
    "LAYOUT_MODEL",
    "convert_bytes",
    "convert_with_docling",
    "full_pdf_pipeline_available",
    "read_pdf",
]

DOCS_HINT = "pip install 'lollms-magics[docs]'"
LAYOUT_MODEL = "docling-project/docling-layout-heron"
DOCLING_SUFFIXES = frozenset({".docx", ".pptx", ".xlsx", ".html", ".htm", ".xhtml"})
# Fewer characters than this per page: the PDF is (mostly) images of text.
_SCANNED_CHARS_PER_PAGE = 20

_converter: Any = None  # one docling DocumentConverter per process, built on first use


def _docling_converter() -> Any:
    global _converter
    if _converter is None:
        try:
            # importlib: docling is optional, and its types are not needed here.
            module = importlib.import_module("docling.document_converter")
        except ImportError as exc:
            raise MissingDependencyError(
                f"reading this file needs docling, from the docs extra ({exc}): {DOCS_HINT}"
            ) from None
        _converter = module.DocumentConverter()
    return _converter


def convert_with_docling(path: Path) -> str:
    """Markdown of a DOCX, PPTX, XLSX or HTML file, headings kept."""
    converter = _docling_converter()
    try:
        result = converter.convert(str(path), raises_on_error=True)
    except (MissingDependencyError, DocumentError):
        raise
    except Exception as exc:  # docling raises many kinds for one unreadable file
        raise DocumentError(f"cannot read {path.name}: it looks corrupt ({_one_line(exc)})") from None
    return str(result.document.export_to_markdown())


def convert_bytes(data: bytes, name: str) -> str:
    """Markdown of an in-memory file (a downloaded HTML page), named ``name`` with its suffix."""
    converter = _docling_converter()
    stream = importlib.import_module("docling.datamodel.base_models").DocumentStream
    try:
        result = converter.convert(stream(name=name, stream=io.BytesIO(data)))
    except Exception as exc:
        raise DocumentError(f"cannot read {name} ({_one_line(exc)})") from None
    return str(result.document.export_to_markdown())


def full_pdf_pipeline_available() -> str | None:
    """None when docling's full PDF pipeline can run here, else why not (one clause)."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("docling") is None:
        return "PDF layout analysis needs the full docling install (pip install docling, about 6 GB on Linux)"
    artifacts = os.environ.get("DOCLING_ARTIFACTS_PATH")
    if artifacts and Path(artifacts).is_dir() and any(Path(artifacts).iterdir()):
        return None
    hub = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub"
    if (hub / ("models--" + LAYOUT_MODEL.replace("/", "--"))).is_dir():
        return None
    return f"the PDF layout model ({LAYOUT_MODEL}) is not on this machine"


def read_pdf(path: Path, notices: list[str], pages: list[str] | None = None) -> str:
    """The text of a PDF: docling's full pipeline when it can run, else the text layer.

    ``pages`` receives the text of each page when the text layer is read (docling's
    Markdown has no page breaks).
    """
    missing = full_pdf_pipeline_available()
    if missing is None:
        try:
            converter = _docling_converter()
            return str(converter.convert(str(path)).document.export_to_markdown())
        except (OSError, ImportError, RuntimeError) as exc:
            missing = f"docling's PDF pipeline failed ({_one_line(exc)})"
    notices.append(
        f"{path.name}: {missing}; read the PDF's text layer instead (no headings, tables or OCR). "
        "For full PDF conversion run 'docling-tools models download' once where Hugging Face is "
        "reachable and set DOCLING_ARTIFACTS_PATH to that folder."
    )
    return _pdf_text_layer(path, pages if pages is not None else [])


def _pdf_text_layer(path: Path, pages: list[str]) -> str:
    try:
        pdfium = importlib.import_module("pypdfium2")
    except ImportError:
        raise MissingDependencyError(
            f"reading PDF files needs pypdfium2, from the docs extra: {DOCS_HINT}"
        ) from None
    try:
        pdf = pdfium.PdfDocument(str(path))
    except Exception as exc:  # pypdfium2 raises PdfiumError for a damaged file
        raise DocumentError(f"cannot read {path.name}: it is not a valid PDF ({_one_line(exc)})") from None
    try:
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            # Pages are kept apart by blank lines so the chunker may break between them.
            pages.append(textpage.get_text_bounded().replace("\r\n", "\n").replace("\r", "\n").strip())
            textpage.close()
            page.close()
        count = len(pdf)
    finally:
        pdf.close()
    text = "\n\n".join(p for p in pages if p)
    if count and len(text) < _SCANNED_CHARS_PER_PAGE * count:
        raise DocumentError(
            f"{path.name} looks scanned (no text layer on its {count} page{'s' * (count > 1)}); "
            "reading it needs OCR: the full docling install plus its models (docling-tools models download)"
        )
    return text


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
