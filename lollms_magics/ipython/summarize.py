"""``%lollms summarize SOURCE`` and ``%%lollms summarize [SOURCE]``: long documents in a cell.

::

    %lollms summarize report.pdf --format "five bullet points" --out s
    %lollms summarize notes_df --mode sequential
    %lollms summarize https://example.org/page.html --hosts http://a:8080,http://b:8080 --concurrency 4

    %%lollms summarize report.docx
    List every deadline and who owns it.

SOURCE is a variable (a string, a list, a DataFrame...; ``name``,
``name.attr`` and ``name[0]`` work), else a file, folder, glob or URL. The
cell body is the instruction for each chunk; with no SOURCE, the cell body is
the text to summarize. A progress bar (ipywidgets in a notebook, a text bar
on a terminal) shows chunk i of N, tokens per second and the time left; the
summary streams into the cell. An interrupt or a failure keeps what was done
in ``--out`` (a :class:`~lollms_magics.summaries.Summary`) and a re-run
resumes. The work itself is :meth:`~lollms_magics.core.session.Session.summarize`.
"""

from __future__ import annotations

import html
import keyword
import sys
import time
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..core.interpolate import lookup
from ..errors import DocumentError, MissingDependencyError
from .args import Parser
from .commands import COMMANDS, Command
from .failure import CellFailure
from .plain import PlainLine, replaying, say

if TYPE_CHECKING:
    from ..summaries.progress import ProgressEvent
    from ..summaries.result import Summary
    from .magics import LollmsMagics

__all__ = ["PARSER", "USAGE", "summarize_command"]

USAGE = "%lollms summarize SOURCE [options]"
_MODES = ("auto", "sequential", "map-reduce")


def _parser() -> Parser:
    p = Parser("%lollms summarize")
    add = p.add_argument
    add("source", nargs="?", help="a variable, a file, a folder, a glob or a URL")
    add("--instruction", help="what to look for in each chunk (a %%lollms summarize cell's body)")
    add("--format", help="the final summary's form, e.g. 'five bullet points'")
    add("--ctx-size", type=int, metavar="N", help="the model's context in tokens")
    add("--chunk-size", type=int, metavar="N", help="tokens per chunk (at most what the context allows)")
    add("--overlap", type=int, metavar="N", help="tokens repeated between chunks (default 0)")
    add("--mode", choices=_MODES, default="auto", help="map-reduce (the default) or sequential")
    add("--concurrency", type=int, default=1, metavar="N", help="requests at once per host")
    add("--hosts", metavar="URL,URL", help="servers sharing the work (same binding)")
    add("-o", "--out", metavar="VAR", help="store the Summary in variable VAR")
    add("--show-steps", action="store_true", help="show the intermediate notes (collapsed)")
    add("--no-resume", action="store_true", help="do not reuse finished steps of an earlier run")
    add("-b", "--binding", help="binding to use, BINDING or BINDING:MODEL")
    add("-m", "--model", help="model name")
    add("--host", help="server URL")
    add("-t", "--temperature", type=float, metavar="T", help="sampling temperature")
    add("-n", "--n-predict", type=int, metavar="N", help="the summary's length limit in tokens")
    add("--debug", action="store_true", help="show the traceback of errors")
    return p


PARSER = _parser()


def summarize_command(magics: LollmsMagics, args: Any, cell: str | None) -> None:
    """Run ``%lollms summarize`` / ``%%lollms summarize``."""
    source, instruction = _source_and_instruction(magics, args, cell)
    if args.out and not (args.out.isidentifier() and not keyword.iskeyword(args.out)):
        raise UsageError(f"%lollms summarize: --out needs a variable name, not {args.out!r}")
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()] if args.hosts else None
    rich = magics._rich()
    bar = (ReplayedBar() if replaying() else WidgetBar()) if rich else TextBar()
    live = LiveText(rich)
    try:
        result = magics.session.summarize(
            source, binding=args.binding, model=args.model, host=args.host, hosts=hosts,
            mode=args.mode, instruction=instruction, format=args.format, ctx_size=args.ctx_size,
            chunk_size=args.chunk_size, overlap=args.overlap, concurrency=args.concurrency,
            n_predict=args.n_predict, temperature=args.temperature, progress=bar,
            resume=not args.no_resume, stream=live.write,
        )
    except (DocumentError, MissingDependencyError) as exc:
        raise UsageError(f"%lollms summarize: {exc}") from None
    live.finish(result)
    if args.show_steps:
        _show_steps(result, rich)
    if args.out:
        magics.ip.user_ns[args.out] = result
    _report_end(result, args.out)


def _source_and_instruction(magics: LollmsMagics, args: Any, cell: str | None) -> tuple[Any, str | None]:
    body = (cell or "").strip()
    if args.source is None:
        if not body:
            raise UsageError(f"usage: {USAGE} (or %%lollms summarize with the text in the cell)")
        return body, args.instruction
    try:
        source: Any = lookup(args.source, magics.ip.user_ns)
    except LookupError:
        source = args.source  # not a variable: a path, a glob or a URL
    return source, body or args.instruction


def _show_steps(result: Summary, rich: bool) -> None:
    steps = [s for s in result.steps if s]
    if rich:
        from IPython.display import HTML, display

        items = "".join(f"<li><pre>{html.escape(s)}</pre></li>" for s in steps)
        display(HTML(f"<details><summary>{len(steps)} steps</summary><ol>{items}</ol></details>"))  # type: ignore[no-untyped-call]
    else:
        say(f"\n--- {len(steps)} steps ---")
        for number, step in enumerate(steps, 1):
            say(f"[{number}]\n{step}")


def _report_end(result: Summary, out: str | None) -> None:
    for notice in result.notices:
        say(f"lollms: {notice}", file=sys.stderr)
    if result.complete:
        return
    kept = f"; what was done is in {out}" if out else "; give --out VAR to keep what was done"
    done = len([s for s in result.steps if s])
    line = f"{done} of {result.chunks} chunks done{kept}; run the cell again to resume"
    if result.error == "interrupted":
        say(f"lollms: interrupted; {line}", file=sys.stderr)
        raise KeyboardInterrupt
    raise CellFailure(f"{result.error}; {line}")


class LiveText:
    """The final summary as it streams: an updatable display, or standard output."""

    def __init__(self, rich: bool, interval: float = 0.1) -> None:
        self.rich = rich
        self.interval = interval
        self.pieces: list[str] = []
        self._handle: Any = None
        self._shown = 0.0

    def write(self, piece: str) -> None:
        self.pieces.append(piece)
        if not self.rich:
            sys.stdout.write(piece)
            sys.stdout.flush()
            return
        now = time.monotonic()
        if now - self._shown >= self.interval:
            self._shown = now
            self._show("".join(self.pieces))

    def finish(self, result: Summary) -> None:
        if self.rich:
            self._show(result.text)
        elif not self.pieces and result.text:
            say(result.text)  # nothing streamed (an interrupted run): its notes
        else:
            say()

    def _show(self, text: str) -> None:
        from IPython.display import Markdown, display

        if self._handle is None:
            self._handle = display(Markdown(text), display_id=True)  # type: ignore[no-untyped-call]
        else:
            self._handle.update(Markdown(text))  # type: ignore[no-untyped-call]


def _label(event: ProgressEvent) -> str:
    from ..summaries.progress import describe

    line = describe(event, 0)
    return line.split("]", 1)[-1].strip()  # the widget draws the bar itself


class WidgetBar:
    """An ipywidgets progress bar with a label, made on the first event (ipywidgets loaded then)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.label: Any = None

    def __call__(self, event: ProgressEvent) -> None:
        if event.phase == "notice":
            say(f"lollms: {event.message}", file=sys.stderr)
            return
        if self.bar is None:
            import ipywidgets
            from IPython.display import display

            self.bar = ipywidgets.IntProgress(min=0, max=max(1, event.total), description="summary")
            self.label = ipywidgets.Label()
            display(ipywidgets.HBox([self.bar, self.label]))  # type: ignore[no-untyped-call]
        self.bar.max = max(1, event.total)
        self.bar.value = min(event.done, event.total)
        self.label.value = _label(event)
        if event.phase in ("done", "stopped"):
            self.bar.bar_style = "success" if event.phase == "done" else "warning"


class ReplayedBar:
    """While a file is replayed: a plain line (no widget), whose last state holds no time or speed."""

    def __init__(self) -> None:
        self.line = PlainLine()

    def __call__(self, event: ProgressEvent) -> None:
        if event.phase == "notice":
            say(f"lollms: {event.message}", file=sys.stderr)
            return
        if event.phase in ("done", "stopped"):
            line = f"summary: {event.chunks} chunk(s) {'done' if event.phase == 'done' else 'stopped'}"
        else:
            line = "summary: " + _label(event)
        self.line.show(line)


class TextBar:
    """The terminal's bar (:class:`lollms_magics.summaries.TextBar`), imported on first use."""

    def __init__(self) -> None:
        self._bar: Any = None

    def __call__(self, event: ProgressEvent) -> None:
        if self._bar is None:
            from ..summaries.progress import TextBar as Bar

            self._bar = Bar()
        self._bar(event)


COMMANDS["summarize"] = Command(
    summarize_command, (0, 1), USAGE, "summarize a long document, file, URL or variable",
    parser=PARSER, cell=True,
)
