"""What SOURCE can be: text, tables, files through docling, PDF, folders, globs, URLs, bad input.

The documents are made here: DOCX and PPTX with python-docx and python-pptx
(which come with the ``docs`` extra), HTML and Markdown as text, and PDF by
:func:`make_pdf`, a small writer of born-digital PDF files. These tests need
the ``docs`` extra: without docling they fail, they are never skipped.
"""

from __future__ import annotations

import http.server
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lollms_magics import get_binding
from lollms_magics.errors import DocumentError, MissingDependencyError
from lollms_magics.summaries import Document, convert, load_source, summarize
from lollms_magics.summaries.resume import shared_memory
from tests.servers import OpenAIServer
from tests.servers.openai_compat import message_text

pytestmark = pytest.mark.timeout(60)


# ------------------------------------------------------------------ fixtures


def make_pdf(pages: list[list[str]]) -> bytes:
    """A PDF with one page per item, each line of text drawn with Helvetica (empty list: no text)."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for lines in pages:
        if lines:
            escaped = [ln.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for ln in lines]
            body = "BT /F1 11 Tf 14 TL 72 740 Td " + " ".join(f"({ln}) Tj T*" for ln in escaped) + " ET"
        else:
            body = "0.5 g 72 300 400 400 re f"  # a grey box: a page that is only a picture
        content = body.encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
        content_number = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>" % content_number
        )
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def make_docx(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("Harbour report", 1)
    document.add_paragraph("The committee met in Brest on 3 May 1998.")
    document.add_heading("Budget", 2)
    document.add_paragraph("The budget was 4,200 euros.")
    document.save(str(path))
    return path


def make_pptx(path: Path) -> Path:
    import pptx

    deck = pptx.Presentation()
    for title, body in (("Harbour plan", "Dredging starts in June 2027."), ("Costs", "It costs 12 million.")):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(str(path))
    return path


HTML = (
    "<html><head><title>News</title></head><body><h1>Harbour news</h1>"
    "<p>The ferry to Ushant leaves at 9.</p><h2>Weather</h2><p>Storm Ciaran hit in 2023.</p></body></html>"
)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    shared_memory().clear()
    yield


# ------------------------------------------------------------------ docling formats


def test_docx_keeps_headings_and_text(tmp_path: Path) -> None:
    document = load_source(make_docx(tmp_path / "report.docx"))
    assert document.text == (
        "## Harbour report\n\nThe committee met in Brest on 3 May 1998.\n\n"
        "### Budget\n\nThe budget was 4,200 euros."
    )
    assert document.name == "report.docx"


def test_pptx_gives_a_heading_per_slide(tmp_path: Path) -> None:
    document = load_source(str(make_pptx(tmp_path / "plan.pptx")))
    assert (
        document.text
        == "# Harbour plan\n\n- Dredging starts in June 2027.\n\n# Costs\n\n- It costs 12 million."
    )


def test_html_file_keeps_headings(tmp_path: Path) -> None:
    (tmp_path / "news.html").write_text(HTML, encoding="utf-8")
    document = load_source(tmp_path / "news.html")
    assert (
        document.text
        == "# Harbour news\n\nThe ferry to Ushant leaves at 9.\n\n## Weather\n\nStorm Ciaran hit in 2023."
    )


def test_markdown_and_text_are_read_directly(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("# Notes\n\nCafé at 8, naïve plan.\n", encoding="utf-8")
    (tmp_path / "plain").write_text("no suffix, still text\n", encoding="utf-8")
    assert load_source(str(tmp_path / "notes.md")).text == "# Notes\n\nCafé at 8, naïve plan.\n"
    assert load_source(str(tmp_path / "plain")).text == "no suffix, still text\n"


def test_a_docx_is_summarized_with_its_headings_reaching_the_model(
    tmp_path: Path, openai_server: OpenAIServer
) -> None:
    openai_server.reply = lambda prompt: "- the committee met in Brest on 3 May 1998"
    binding = get_binding("openai", host=openai_server.url, model="test-model")
    result = summarize(str(make_docx(tmp_path / "report.docx")), binding)
    assert result.complete and result.source == "report.docx"
    sent = message_text(openai_server.requests_to("/v1/chat/completions")[0].json["messages"][-1]["content"])
    assert "## Harbour report\n\nThe committee met in Brest on 3 May 1998." in sent
    assert result.text == "- the committee met in Brest on 3 May 1998"


def test_without_docling_the_line_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(convert, "_converter", None)
    monkeypatch.setitem(sys.modules, "docling.document_converter", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError) as caught:
        load_source(make_docx(tmp_path / "report.docx"))
    message = str(caught.value)
    assert message.startswith("reading this file needs docling, from the docs extra (")
    assert message.endswith("): pip install 'lollms-magics[docs]'")


# ------------------------------------------------------------------ PDF


def test_pdf_falls_back_to_its_text_layer_and_says_which_model_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "paper.pdf"
    path.write_bytes(
        make_pdf([["The harbour of Brest (France)", "was rebuilt in 1950."], ["Page two: 42 boats."]])
    )
    document = load_source(path)
    assert "The harbour of Brest (France)\nwas rebuilt in 1950." in document.text
    assert document.text.endswith("Page two: 42 boats.")
    assert "\n\n" in document.text  # pages apart, so chunks may break between them
    assert document.notices == [
        "paper.pdf: PDF layout analysis needs the full docling install (pip install docling, about 6 GB on "
        "Linux); read the PDF's text layer instead (no headings, tables or OCR). For full PDF conversion run "
        "'docling-tools models download' once where Hugging Face is reachable and set DOCLING_ARTIFACTS_PATH "
        "to that folder."
    ]


def test_the_layout_model_is_named_when_torch_is_there_but_not_the_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = convert.importlib.util.find_spec
    monkeypatch.setattr(
        convert.importlib.util, "find_spec", lambda name: object() if name == "torch" else real(name)
    )
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("DOCLING_ARTIFACTS_PATH", raising=False)
    assert convert.full_pdf_pipeline_available() == (
        "the PDF layout model (docling-project/docling-layout-heron) is not on this machine"
    )
    (tmp_path / "hub" / "models--docling-project--docling-layout-heron").mkdir(parents=True)
    assert convert.full_pdf_pipeline_available() is None


def test_a_scanned_pdf_says_so(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf([[], []]))
    with pytest.raises(DocumentError) as caught:
        load_source(path)
    assert str(caught.value) == (
        "scan.pdf looks scanned (no text layer on its 2 pages); reading it needs OCR: the full docling "
        "install plus its models (docling-tools models download)"
    )


def test_a_pdf_summary_goes_through_the_fallback(tmp_path: Path, openai_server: OpenAIServer) -> None:
    path = tmp_path / "paper.pdf"
    path.write_bytes(make_pdf([["The harbour of Brest was rebuilt in 1950."]]))
    events: list[Any] = []
    binding = get_binding("openai", host=openai_server.url, model="test-model")
    result = summarize(str(path), binding, progress=events.append)
    assert result.complete
    assert result.notices and result.notices[0].startswith("paper.pdf: PDF layout analysis needs")
    assert [e.message for e in events if e.phase == "notice"] == result.notices
    sent = message_text(openai_server.requests_to("/v1/chat/completions")[0].json["messages"][-1]["content"])
    assert "The harbour of Brest was rebuilt in 1950." in sent


# ------------------------------------------------------------------ other sources


def test_strings_lists_and_tables() -> None:
    assert load_source("A short text.").text == "A short text."
    assert load_source(["first part", "second part"]).text == "first part\n\nsecond part"

    class Frame:
        def to_csv(self, index: bool = True) -> str:
            assert index is False
            return "city,year\nBrest,1998\n"

    assert load_source(Frame()).text == "city,year\nBrest,1998\n"
    document = Document("already read", "mine")
    assert load_source(document) is document


def test_a_folder_gives_its_files_in_order_under_their_names(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("Second file.", encoding="utf-8")
    (tmp_path / "a.txt").write_text("First file.", encoding="utf-8")
    (tmp_path / ".hidden.md").write_text("Hidden.", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp_path / "empty.md").write_text("  \n", encoding="utf-8")
    document = load_source(tmp_path)
    assert document.text == "# a.txt\n\nFirst file.\n\n# b.md\n\nSecond file."
    assert document.notices == [
        f"skipped {tmp_path / 'empty.md'}: empty.md is empty: there is nothing to summarize"
    ]


def test_a_glob_gives_the_matching_files(tmp_path: Path) -> None:
    (tmp_path / "one.md").write_text("One.", encoding="utf-8")
    (tmp_path / "two.md").write_text("Two.", encoding="utf-8")
    (tmp_path / "three.txt").write_text("Three.", encoding="utf-8")
    assert load_source(str(tmp_path / "*.md")).text == "# one.md\n\nOne.\n\n# two.md\n\nTwo."


class _Pages(http.server.BaseHTTPRequestHandler):
    pages = {
        "/news.html": ("text/html; charset=utf-8", HTML.encode()),
        "/notes.txt": ("text/plain; charset=utf-8", b"Plain notes: 3 May 1998."),
    }

    def do_GET(self) -> None:
        kind, body = self.pages.get(self.path, ("text/plain", b"missing"))
        self.send_response(200 if self.path in self.pages else 404)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def pages() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_urls_are_fetched_and_converted(pages: str) -> None:
    html = load_source(pages + "/news.html")
    assert (
        html.text
        == "# Harbour news\n\nThe ferry to Ushant leaves at 9.\n\n## Weather\n\nStorm Ciaran hit in 2023."
    )
    assert html.name == pages + "/news.html"
    assert load_source(pages + "/notes.txt").text == "Plain notes: 3 May 1998."


# ------------------------------------------------------------------ bad input, one line each


def test_bad_inputs_are_one_line_each(tmp_path: Path, pages: str) -> None:
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a PDF")
    (tmp_path / "empty_folder").mkdir()
    cases = {
        str(tmp_path / "missing.pdf"): f"file not found: {tmp_path / 'missing.pdf'}",
        "report.docx": "file not found: report.docx",
        str(tmp_path / "empty.txt"): "empty.txt is empty: there is nothing to summarize",
        "   ": "text is empty: there is nothing to summarize",
        str(tmp_path / "nothing*.md"): f"no file matches {tmp_path / 'nothing*.md'}",
        pages + "/gone.html": f"{pages}/gone.html answered HTTP 404; check the address",
    }
    for source, message in cases.items():
        with pytest.raises(DocumentError) as caught:
            load_source(source)
        assert str(caught.value) == message
    with pytest.raises(DocumentError) as caught:
        load_source(tmp_path / "photo.png")
    assert str(caught.value).startswith(
        "cannot summarize photo.png: unsupported file type .png (supported: .csv, "
    )
    with pytest.raises(DocumentError) as caught:
        load_source(tmp_path / "broken.pdf")
    assert str(caught.value).startswith("cannot read broken.pdf: it is not a valid PDF (")
    with pytest.raises(DocumentError) as caught:
        load_source(tmp_path / "empty_folder")
    assert str(caught.value).startswith(
        f"folder {tmp_path / 'empty_folder'} has no file to summarize (supported: "
    )
    with pytest.raises(DocumentError) as caught:
        load_source("http://127.0.0.1:9/report.html")
    assert str(caught.value).startswith("cannot fetch http://127.0.0.1:9/report.html (")
    assert str(caught.value).endswith("); check the address and the network")


def test_a_corrupt_office_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.docx").write_bytes(b"PK\x03\x04 not a real zip archive at all")
    with pytest.raises(DocumentError) as caught:
        load_source(tmp_path / "broken.docx")
    assert str(caught.value).startswith("cannot read broken.docx: it looks corrupt (")
    assert "\n" not in str(caught.value)
