"""A summary's source is read within limits: URLs streamed with a byte cap and a deadline, files and folders
measured before they are read. Each refusal is one line naming the limit to raise."""

from __future__ import annotations

import http.server
import os
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lollms_magics.errors import DocumentError
from lollms_magics.summaries import load_source, sources

pytestmark = pytest.mark.timeout(60)

HERE = "lollms_magics.summaries.sources"
_PIECE = b"word " * 13107  # 65,535 bytes of text, made once: the server's sends allocate nothing new


class _Faulty(http.server.BaseHTTPRequestHandler):
    """Bodies that no download may take whole: huge, announced huge, trickling, silent."""

    protocol_version = "HTTP/1.1"
    stopping = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        if self.path == "/announced.txt":
            self.send_header("Content-Length", str(10 * 2**30))
            self.end_headers()
            self.stopping.wait(20)  # the 10 GB never come
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if self.path == "/huge.txt":  # 64 MB, length not announced
                for _ in range(1024):
                    self._chunk(_PIECE)
            elif self.path == "/trickle.txt":  # a byte every 50 ms, for 20 s
                for _ in range(400):
                    if self.stopping.wait(0.05):
                        break
                    self._chunk(b"a")
            elif self.path == "/silent.txt":
                self.stopping.wait(20)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client gave up, as it should

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n" % len(data))
        self.wfile.write(data)
        self.wfile.write(b"\r\n")
        self.wfile.flush()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def faulty() -> Iterator[str]:
    _Faulty.stopping.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Faulty)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Faulty.stopping.set()
    server.shutdown()
    server.server_close()


def refusal(source: Any) -> tuple[str, float, int]:
    """The one-line refusal of ``source``, the seconds it took and the peak memory it grew by."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DocumentError) as caught:
            load_source(source)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert "\n" not in message
    return message, elapsed, peak


def sparse(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no room on the disk (reading it would give zeros)."""
    path.write_bytes(b"")
    os.truncate(path, size)
    return path


# ------------------------------------------------------------------ URLs


def test_a_huge_body_without_length_stops_at_the_cap(faulty: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "MAX_SOURCE_BYTES", 2**20)
    message, elapsed, peak = refusal(faulty + "/huge.txt")
    assert message == (
        f"{faulty}/huge.txt is larger than 1 MB ({HERE}.MAX_SOURCE_BYTES); "
        "download a part of it, or raise that limit"
    )
    assert peak < 4 * 2**20  # the 64 MB sent were not all taken in
    assert elapsed < 10.0


def test_an_announced_length_beyond_the_cap_is_refused_before_the_body(faulty: str) -> None:
    message, elapsed, _ = refusal(faulty + "/announced.txt")  # the default limit, 200 MB
    assert message == (
        f"{faulty}/announced.txt is larger than 200 MB ({HERE}.MAX_SOURCE_BYTES); "
        "download a part of it, or raise that limit"
    )
    assert elapsed < 5.0  # the server sends nothing after its headers: waiting would take 20 s


def test_a_trickling_body_meets_the_deadline(faulty: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "DOWNLOAD_DEADLINE", 1.0)
    message, elapsed, _ = refusal(faulty + "/trickle.txt")
    assert message == (
        f"{faulty}/trickle.txt took more than 1 s to download ({HERE}.DOWNLOAD_DEADLINE); "
        "download it and give the file, or raise that limit"
    )
    assert elapsed < 6.0  # each byte comes well within the read timeout: only the deadline ends it


def test_a_silent_body_meets_the_deadline_too(faulty: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "DOWNLOAD_DEADLINE", 1.0)
    message, elapsed, _ = refusal(faulty + "/silent.txt")
    assert message.startswith(f"{faulty}/silent.txt took more than 1 s to download (")
    assert elapsed < 6.0


def test_a_body_within_the_cap_is_read(faulty: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "DOWNLOAD_DEADLINE", 30.0)
    monkeypatch.setattr(sources, "MAX_SOURCE_BYTES", 100 * 2**20)
    document = load_source(faulty + "/huge.txt")
    assert len(document.text) == 1024 * len(_PIECE)


# ------------------------------------------------------------------ files


def test_a_file_beyond_the_default_limit_is_refused_without_being_read(tmp_path: Path) -> None:
    path = sparse(tmp_path / "big.txt", 300 * 2**20)
    message, elapsed, peak = refusal(path)
    assert message == (
        f"big.txt is 300 MB, more than 200 MB ({HERE}.MAX_SOURCE_BYTES); "
        "summarize a part of it, or raise that limit"
    )
    assert peak < 2**20 and elapsed < 5.0


@pytest.mark.parametrize("name", ["big.pdf", "big.docx", "big"])
def test_every_kind_of_file_is_measured_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(sources, "MAX_SOURCE_BYTES", 2**20)
    path = sparse(tmp_path / name, 3 * 2**19)
    message, _, peak = refusal(path)
    assert message.startswith(f"{name} is 1.5 MB, more than 1 MB ({HERE}.MAX_SOURCE_BYTES); ")
    assert peak < 2**20


# ------------------------------------------------------------------ folders and globs


def write_files(folder: Path, count: int, size: Callable[[int], int] = lambda i: 0) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(count):
        path = folder / f"note{i:03d}.md"
        path.write_text(f"Note {i} says the harbour opened.", encoding="utf-8")
        if size(i):
            os.truncate(path, size(i))


def test_a_folder_with_too_many_files_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "MAX_FOLDER_FILES", 5)
    write_files(tmp_path / "five", 5)
    assert load_source(tmp_path / "five").text.count("# note") == 5  # at the limit: read
    write_files(tmp_path / "six", 6)
    message, _, _ = refusal(tmp_path / "six")
    assert message == (
        f"folder {tmp_path / 'six'} holds more than 5 files to summarize ({HERE}.MAX_FOLDER_FILES); "
        "choose fewer with a glob, or raise that limit"
    )
    message, _, _ = refusal(str(tmp_path / "six" / "*.md"))
    assert message.startswith(f"{tmp_path / 'six' / '*.md'} matches more than 5 files to summarize (")


def test_the_default_file_count_is_checked_while_walking(tmp_path: Path) -> None:
    write_files(tmp_path / "many", 2001)
    message, elapsed, _ = refusal(tmp_path / "many")
    assert message.startswith(f"folder {tmp_path / 'many'} holds more than 2,000 files to summarize (")
    assert elapsed < 10.0


def test_a_folder_too_large_together_is_refused_without_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "MAX_SOURCE_BYTES", 2**20)
    monkeypatch.setattr(sources, "MAX_FOLDER_BYTES", 2**20)
    write_files(tmp_path / "heavy", 3, size=lambda i: 2**19)  # 512 kB each, 1.5 MB together
    message, _, peak = refusal(tmp_path / "heavy")
    assert message == (
        f"folder {tmp_path / 'heavy'} holds more than 1 MB to summarize ({HERE}.MAX_FOLDER_BYTES); "
        "choose fewer files with a glob, or raise that limit"
    )
    assert peak < 2**19
