"""Showing an answer while it streams, then in its final form.

In a notebook the answer streams into one display, updated by id at most
every ``interval`` seconds, so the work done is bounded by time, not by the
number of pieces. When the answer ends that same display is replaced by one
rich output (Markdown by default) carrying provenance metadata, which is what
the saved ``.ipynb``, nbviewer and GitHub show. Around the answer, never in
it: the model's reasoning, collapsed; a visible mark when the answer is
incomplete; a quiet footer with the figures (model, tokens, speed, time) and
any notes.

An answer replayed from a file shows the figures recorded with it, not the
replay's (which depend on the machine and the ``--speed``), and its metadata
names where it came from (``replay``: the file, the entry's line, when it was
recorded, the model): a notebook replayed twice saves the same bytes.

Where there is no rich frontend (terminal IPython) the pieces go straight to
standard output instead.

An answer asked for as data (``--schema``) ends as that data: a table for a
list of records or one record of plain values (pandas' own table when the
user imported pandas), else formatted JSON; the answer as the model wrote it
stays below, collapsed.
"""

from __future__ import annotations

import html
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .plain import say

if TYPE_CHECKING:
    from ..response import Response

__all__ = ["FORMATS", "LiveAnswer", "bundle", "data_bundle", "first_code_block", "footer", "has_rich_display"]

_CODE_BLOCK = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CURSOR = " ▍"
_NO_DATA = object()
# Rows of a data table shown in our own HTML (the variable holds them all).
MAX_TABLE_ROWS = 200


def first_code_block(text: str) -> str:
    """The first fenced code block of ``text``, or the whole text when it has none."""
    match = _CODE_BLOCK.search(text)
    return (match.group(1) if match else text).strip("\n")


def _json(text: str) -> dict[str, Any]:
    body = text.strip()
    if body.startswith("```"):  # models like to fence their JSON
        body = first_code_block(body)
    try:
        return {"application/json": json.loads(body), "text/plain": text}
    except ValueError:
        return _markdown(text)


def _markdown(text: str) -> dict[str, Any]:
    return {"text/markdown": text, "text/plain": text}


def _text(text: str) -> dict[str, Any]:
    return {"text/plain": text}


def _html(text: str) -> dict[str, Any]:
    return {"text/html": text, "text/plain": text}


# Output format -> the mime bundle of the final display. ``code`` shows the
# answer as Markdown; its code block also goes into a new cell.
_BUNDLES: dict[str, Callable[[str], dict[str, Any]]] = {
    "markdown": _markdown,
    "text": _text,
    "code": _markdown,
    "html": _html,
    "json": _json,
}
FORMATS = tuple(_BUNDLES)


def bundle(text: str, fmt: str) -> dict[str, Any]:
    """The mime bundle that shows ``text`` in format ``fmt``."""
    return _BUNDLES[fmt](text)


def data_bundle(data: Any, columns: list[str] | None = None) -> dict[str, Any]:
    """The mime bundle that shows an answer's data: a table when it is tabular, else JSON.

    Tabular: a non-empty list of dicts, or one dict of plain values (a row).
    ``columns`` (the schema's fields) come first, in their order.
    """
    pretty = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    rows = _rows(data)
    if rows is None:
        return {"text/markdown": f"```json\n{pretty}\n```", "text/plain": pretty}
    names = list(dict.fromkeys([*(columns or []), *(k for row in rows for k in row)]))
    pandas = sys.modules.get("pandas")  # only when the user imported it: we never do
    if pandas is not None:
        try:
            table = str(pandas.DataFrame(rows, columns=names)._repr_html_())
        except Exception:  # an odd pandas: our own table will do
            table = _table(rows, names)
    else:
        table = _table(rows, names)
    return {"text/html": table, "text/plain": pretty}


def _rows(data: Any) -> list[dict[str, Any]] | None:
    if isinstance(data, list) and data and all(isinstance(row, dict) for row in data):
        return data
    plain = (str, int, float, bool, type(None))
    if isinstance(data, dict) and data and all(isinstance(v, plain) for v in data.values()):
        return [data]
    return None


def _table(rows: list[dict[str, Any]], names: list[str]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return ""
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        return html.escape(text)

    head = "".join(f"<th>{html.escape(str(n))}</th>" for n in names)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(row.get(n))}</td>" for n in names) + "</tr>"
        for row in rows[:MAX_TABLE_ROWS]
    )
    more = len(rows) - MAX_TABLE_ROWS
    tail = f"<p>… {more} more rows (all are in the variable)</p>" if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{tail}"


def footer(response: Response, figures: dict[str, Any] | None = None) -> str:
    """One quiet line of figures: model, tokens, speed, time (``figures``: the recorded ones instead)."""
    parts = [str(response.model or response.binding)]
    if response.completion_tokens is not None:
        parts.append(f"{response.completion_tokens} tokens")
    speed = response.tokens_per_second if figures is None else figures.get("tokens_per_second")
    if speed is not None:
        parts.append(f"{speed:.1f} tok/s")
    duration = response.duration if figures is None else figures.get("duration")
    if duration is not None:
        parts.append(f"{duration:.1f} s")
    return " · ".join(parts)


_TIMES = ("time_to_first_token", "tokens_per_second", "duration")


def replayed_pictures(metadata: dict[str, Any]) -> None:
    """For pictures replayed from a file: the recorded ``duration`` and the source, in ``metadata``."""
    from .. import replay

    tape = replay.active()
    source = tape.source(any_thread=True) if isinstance(tape, replay.Player) else None
    if source is None:
        return
    source.pop("time_to_first_token", None)
    duration = source.pop("duration", None)
    if "duration" in metadata and duration is not None:
        metadata["duration"] = round(duration, 3)
    metadata["replay"] = source


def replayed_figures(response: Response, metadata: dict[str, Any]) -> dict[str, Any] | None:
    """For an answer replayed from a file: its recorded figures, put in ``metadata`` with its source.

    None (and ``metadata`` unchanged) when the answer did not come from a
    replay file. The figures measured during the replay are dropped: they
    change from run to run.
    """
    from .. import replay

    tape = replay.active()
    source = tape.source() if isinstance(tape, replay.Player) else None
    if source is None:
        return None
    figures: dict[str, Any] = {}
    first, duration = source.pop("time_to_first_token", None), source.pop("duration", None)
    if first is not None:
        figures["time_to_first_token"] = first
    if duration is not None:
        figures["duration"] = duration
    tokens = response.completion_tokens
    if first is not None and duration is not None and tokens and tokens > 1 and duration > first:
        figures["tokens_per_second"] = (tokens - 1) / (duration - first)  # as Response computes it
    for name in _TIMES:
        metadata.pop(name, None)
        if name in figures:
            metadata[name] = round(figures[name], 4)
    metadata["replay"] = source
    return figures


def incomplete_reason(response: Response) -> str | None:
    """Why the answer is incomplete, in a few words; None when it is whole."""
    if response.done:
        return None
    if response.error is not None:
        return f"the answer stopped: {response.error}"
    return "interrupted: the answer was stopped before its end"


def has_rich_display(shell: Any) -> bool:
    """True when displays reach a rich frontend (a kernel, or a capture), not a terminal.

    Terminal IPython keeps the base ``DisplayPublisher``, which only prints
    plain text; kernels, Colab and ``capture_output`` replace it.
    """
    from IPython.core.displaypub import DisplayPublisher

    publisher = getattr(shell, "display_pub", None)
    return publisher is not None and type(publisher) is not DisplayPublisher


class LiveAnswer:
    """The output of one answer: live while it streams, final once it ends.

    Parameters
    ----------
    rich:
        Use an updatable display (notebooks); else write to standard output.
    live:
        Show the text while it arrives (``--no-stream`` turns this off).
    interval:
        Least number of seconds between two updates of the live display.
    fmt:
        The final format (see :data:`FORMATS`).
    show_footer:
        Add the quiet line of figures under the final answer.
    """

    def __init__(
        self, *, rich: bool, live: bool, interval: float, fmt: str, show_footer: bool = True
    ) -> None:
        self.rich = rich
        self.live = live
        self.interval = interval
        self.fmt = fmt
        self.show_footer = show_footer
        self.updates = 0
        self._pieces: list[str] = []
        self._handle: Any = None

    @property
    def text(self) -> str:
        """Everything received so far."""
        return "".join(self._pieces)

    def consume(self, response: Response) -> None:
        """Read ``response`` to the end, showing it as it comes.

        Whatever stops the loop (an error, ``KeyboardInterrupt``) propagates;
        the text received until then stays in :attr:`text`. An answer asked
        for as data may be asked again (``response.attempts`` grows): the text
        shown then starts over with the new attempt.
        """
        attempts = getattr(response, "attempts", None)
        pieces: Iterable[str] = response if attempts is None else self._restarting(response, attempts)
        append = self._pieces.append
        if not self.rich:
            write, flush = sys.stdout.write, sys.stdout.flush
            for piece in pieces:
                append(piece)
                write(piece)
                flush()
            return
        if not self.live:
            for piece in pieces:
                append(piece)
            return
        clock = time.monotonic
        interval = self.interval
        next_at = 0.0  # the first piece is shown at once
        for piece in pieces:
            append(piece)
            now = clock()
            if now >= next_at:
                self._show(self._live_view(response), {})
                next_at = now + interval

    def _restarting(self, response: Response, attempts: list[Any]) -> Iterator[str]:
        """The pieces of ``response``; when a new attempt starts, what was kept of the last is dropped."""
        seen = len(attempts)
        for piece in response:
            if len(attempts) != seen:
                seen = len(attempts)
                self._pieces.clear()
                if not self.rich:
                    sys.stdout.write("\n")  # printed text cannot be taken back: the new one starts a line
            yield piece

    def _live_view(self, response: Response) -> dict[str, Any]:
        text = self.text + _CURSOR
        if self.fmt in ("markdown", "code"):
            thinking = response.reasoning
            if thinking:
                text = _details("Reasoning", thinking) + text
            return _markdown(text)
        return _text(text)

    def finish(
        self, response: Response, metadata: dict[str, Any], notes: list[str], data: Any = _NO_DATA
    ) -> None:
        """Replace the live view by the final output, tagged with ``metadata``.

        With ``data`` (an answer asked for as data, complete), the output shows
        that data (see :func:`data_bundle`) instead of the text.
        """
        if data is not _NO_DATA and self.rich:
            self._finish_data(response, metadata, notes, data)
            return
        reason = incomplete_reason(response)
        if not self.rich:
            if self._pieces and not self._pieces[-1].endswith("\n"):
                sys.stdout.write("\n")
            sys.stdout.flush()
            if reason:
                say(f"[incomplete: {reason}]", file=sys.stderr)
            for note in notes:
                say(f"lollms: {note}", file=sys.stderr)
            return
        figures = replayed_figures(response, metadata)
        data = bundle(self.text, self.fmt)
        extra: list[str] = []
        if reason:
            extra.append(f"**⚠ incomplete** — {_escape(reason)}")
        if self.show_footer:
            extra.append(f"<sub>{_escape(' · '.join([footer(response, figures), *notes]))}</sub>")
        elif notes:
            extra.append(f"<sub>{_escape(' · '.join(notes))}</sub>")
        if "text/markdown" in data:
            head = _details("Reasoning", response.reasoning) if response.reasoning else ""
            data["text/markdown"] = head + data["text/markdown"] + "".join(f"\n\n{e}" for e in extra)
        elif reason:
            data["text/plain"] = f"{data['text/plain']}\n\n[incomplete: {reason}]"
        self._show(data, {"lollms_magics": metadata})

    def _finish_data(self, response: Response, metadata: dict[str, Any], notes: list[str], data: Any) -> None:
        figures = replayed_figures(response, metadata)
        schema = getattr(response, "schema", None)
        shown = data_bundle(data, list(getattr(schema, "fields", []) or []))
        written = _details("The answer as written", response.text)
        line = " · ".join([footer(response, figures), *notes] if self.show_footer else notes)
        if "text/html" in shown:
            small = f"<div><sub>{html.escape(line)}</sub></div>" if line else ""
            shown["text/html"] += f"\n{written}{small}"
        else:
            small = f"\n\n<sub>{_escape(line)}</sub>" if line else ""
            shown["text/markdown"] += f"\n\n{written}{small}"
        self._show(shown, {"lollms_magics": metadata})

    def _show(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        from IPython.display import display

        self.updates += 1
        if self._handle is None:
            self._handle = display(  # type: ignore[no-untyped-call]
                data, raw=True, metadata=metadata, display_id=True
            )
        else:
            self._handle.update(data, raw=True, metadata=metadata)


def _details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{html.escape(body)}\n\n</details>\n\n"


def _escape(text: str) -> str:
    # Markdown that renders the text as written (a footer is not markup).
    return html.escape(text).replace("*", "\\*").replace("_", "\\_")
