"""What the magics print reaches the notebook a line at a time, never a line cut in two."""

from __future__ import annotations

import io
import sys
from types import SimpleNamespace

import pytest

from lollms_magics.ipython.plain import say


class Stream(io.StringIO):
    """A stream that keeps each write and counts flushes, as a kernel's stream sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1


def test_a_line_is_one_write_then_a_flush() -> None:
    stream = Stream()
    say("2 picture(s);", 128, "x", 128, file=stream)
    assert stream.writes == ["2 picture(s); 128 x 128\n"]  # print() makes seven writes of this
    assert stream.flushes == 1


def test_standard_output_is_looked_up_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = Stream()
    monkeypatch.setattr(sys, "stdout", stream)  # as IPython's capture and ipykernel swap it
    say("lollms: using openai")
    assert stream.writes == ["lollms: using openai\n"]


def test_a_listing_goes_out_as_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    from lollms_magics.ipython import commands

    stream = Stream()
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setattr("lollms_magics.bindings.binding_names", lambda: ["lollms", "ollama", "openai"])

    magics = SimpleNamespace(session=SimpleNamespace(last=None, configured=lambda: None))
    commands._bindings(magics, None, None)  # type: ignore[arg-type]
    assert stream.writes == ["  lollms\n  ollama\n  openai\n"]
