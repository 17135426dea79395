"""An image is read within a limit: a device, a huge file or a huge payload fails at once, in one line."""

from __future__ import annotations

import base64
import os
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from lollms_magics import images
from lollms_magics.errors import InvalidImageError
from lollms_magics.images import encode_image
from tests.servers import OpenAIServer, tiny_png
from tests.shell import magics_shell

LIMIT_LINE = "is larger than 32 MB, the limit for an image (lollms_magics.images.MAX_IMAGE_BYTES)"


@pytest.fixture
def ip(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    unset = ("LOLLMS_MAGICS_BINDING", "LOLLMS_MAGICS_HOST", "OPENAI_API_KEY", "OPENAI_BASE_URL")
    with magics_shell(monkeypatch, unset=unset) as shell:
        yield shell


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_fails_at_once_with_one_line() -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(InvalidImageError) as caught:
            encode_image("/dev/zero")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5.0
    assert str(caught.value) == f"file /dev/zero {LIMIT_LINE}"
    assert peak < 3 * 33 * 2**20  # what one read past the limit takes, not the device's endless zeros


def test_a_huge_file_is_refused_by_its_size_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    with path.open("wb") as f:
        f.write(tiny_png())
    os.truncate(path, 4 * 2**30)  # 4 GB, sparse: nothing is written to the disk
    tracemalloc.start()
    try:
        with pytest.raises(InvalidImageError) as caught:
            encode_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(caught.value) == f"file {path} {LIMIT_LINE}"
    assert peak < 2**20


def test_bytes_and_data_urls_beyond_the_limit_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 1000)
    small = tiny_png()
    assert encode_image(small).mime == "image/png"  # under the limit, as before
    big = small + b"\x00" * 1000
    with pytest.raises(InvalidImageError, match=r"^the image bytes is larger than 1,000 bytes, the limit"):
        encode_image(big)
    url = "data:image/png;base64," + base64.b64encode(big).decode("ascii")
    with pytest.raises(InvalidImageError, match=r"^the data URL is larger than 1,000 bytes, the limit"):
        encode_image(url)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_the_magic_refuses_dev_zero_in_one_line_before_asking(
    ip: InteractiveShell, openai_server: OpenAIServer
) -> None:
    ip.user_ns["picture"] = "/dev/zero"  # a path held in a variable is read as the image file
    line = f"-b openai --host {openai_server.url} -m vision-model -i picture"
    started = time.perf_counter()
    with capture_output() as cap, pytest.raises(UsageError) as caught:
        ip.run_cell_magic("lollms", line, "What is this?")
    assert time.perf_counter() - started < 10.0
    assert str(caught.value) == f"%lollms: file /dev/zero {LIMIT_LINE}"
    # Named on the line, /dev/zero is no regular file: refused before any read.
    with capture_output(), pytest.raises(UsageError, match=r"^%lollms: -i /dev/zero: [^\n]+$"):
        ip.run_cell_magic("lollms", line.replace("-i picture", "-i /dev/zero"), "What is this?")
    assert openai_server.requests_to("/v1/chat/completions") == []
    assert cap.outputs == []
