"""The summarize panel: a file (uploaded, a path, a URL, or a variable's name), backend, model, context, Stop.

The summary runs in a worker thread; the progress bar follows each step,
one status line next to it says where the run stands (and only that: a
new run replaces the last run's "done", a Stop replaces the time left),
and the final summary streams in as Markdown. The backend, host, model
and context are the session's unless chosen in the panel
(:mod:`.summarize_choice`), and a line says which the next run uses.

Stop cancels the requests in flight (``Response.cancel()``) and the work
ends with what was done; the answers that finished are remembered
(:mod:`lollms_magics.summaries.resume`), so Summarize again resumes. An
uploaded file is kept in the kernel until Clear (:class:`.KeptFile`): a
resume needs no new upload. The summary also goes into the cell's output
as Markdown, with its figures and the model that wrote it.
"""

from __future__ import annotations

import html
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LollmsMagicsError
from ..summaries import MODES, summarize
from ..summaries.calls import Cancelled
from ..summaries.progress import ProgressEvent
from .common import Panel, Throttle, markdown_bundle
from .summarize_choice import BackendChoice
from .summarize_support import KeptFile, Pace, StoppableBinding, progress_line

if TYPE_CHECKING:
    from ..summaries.result import Summary

__all__ = ["KeptFile", "StoppableBinding", "SummarizePanel"]

_URL = re.compile(r"^https?://", re.IGNORECASE)
NO_FILE = "no file kept"


class _Run:
    """One run's own state: its Stop, its pace, its notices (a later run never touches them)."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.pace = Pace()
        self.notices: list[str] = []
        self.words = 0  # of the final summary, streamed so far


class SummarizePanel(Panel):
    """Summarize a document longer than the model's context, with the session's backend or the panel's."""

    kind = "summarize"
    interval = 0.2

    def _build(self) -> list[Any]:
        w = self.w
        wide = w.Layout(width="520px")
        self.upload = w.FileUpload(multiple=False, description="File")
        self.file = w.HTML(value=_grey(NO_FILE))
        self.clear = w.Button(description="Clear", icon="times", disabled=True,
                              tooltip="forget the uploaded file (it is kept in the kernel until then)")
        self.source = w.Text(description="or path", placeholder="a path, a URL or a variable's name",
                             layout=wide)
        self.choice = BackendChoice(w, self.session, self._unexpected)
        self.mode = w.Dropdown(options=list(MODES), value="auto", description="mode")
        self.instruction = w.Text(description="instruction", layout=wide,
                                  placeholder="what to look for (default: key points)")
        self.format = w.Text(description="form", layout=wide,
                             placeholder="the summary's form: five bullet points, a table…")
        self.start = w.Button(description="Summarize", button_style="primary", icon="compress")
        self.stop = w.Button(description="Stop", button_style="warning", icon="stop", disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=1, description="progress")
        self.result = w.Output(layout=w.Layout(border="1px solid #ddd", padding="4px"))
        for name in ("upload", "file", "clear", "source", "mode", "start", "stop", "progress", "status"):
            getattr(self, name).add_class(f"lollms-summarize-{name}")
        self.summary: Summary | None = None
        self._kept: KeptFile | None = None
        self._bindings: list[StoppableBinding] = []  # the running summary's, for Stop to cut
        self._run = _Run()
        self._run.stopping.set()  # no run yet: nothing to stop
        self._lock = threading.Lock()  # the status line: a run's update never lands after its Stop
        self.upload.observe(self._on_upload, names="value")
        self.clear.on_click(lambda _: self.forget_file())
        self.start.on_click(lambda _: self.run())
        self.stop.on_click(lambda _: self.cancel())
        return [w.HTML("<b>lollms summarize</b>"), w.HBox([self.upload, self.file, self.clear]), self.source,
                self.choice.widget, self.mode, self.instruction, self.format, w.HBox([self.start, self.stop]),
                w.HBox([self.progress, self.status]), self.result]

    # -- the file ---------------------------------------------------------------------

    def _on_upload(self, change: dict[str, Any]) -> None:
        files = list(change["new"])
        if not files:
            return
        self._kept = KeptFile(str(files[0]["name"]), bytes(files[0]["content"]))
        # Out of the widget at once: its state may be saved with the notebook, the kernel's may not.
        self.upload.value = ()
        self.source.value = ""  # the file just uploaded is what Summarize reads
        self.file.value = _grey(f"{self._kept.label}, kept in the kernel until Clear")
        self.clear.disabled = False

    def forget_file(self) -> None:
        """Forget the uploaded file (what Clear does)."""
        self._kept = None
        self.file.value = _grey(NO_FILE)
        self.clear.disabled = True

    def _source(self) -> tuple[Any, str]:
        """What to summarize and its name: the path field when filled, else the kept upload."""
        from ..errors import InvalidOptionError

        ref = self.source.value.strip()
        if not ref:
            if self._kept is not None:
                return self._kept, self._kept.name
            raise InvalidOptionError("choose a file, or give a path, a URL or a variable's name")
        namespace = _user_namespace()
        if ref.isidentifier() and ref in namespace:
            return namespace[ref], ref
        return (ref if _URL.match(ref) else Path(ref).expanduser()), ref

    # -- running ------------------------------------------------------------------------

    def run(self) -> bool:
        """Start the summary (what Summarize does); False when it could not start."""
        if self.worker.busy:  # a stopped run still winding down keeps its Stop
            ending = self._run.stopping.is_set()
            self.say("the stopped summary is still ending: start again in a moment" if ending
                     else "a summary is still running: Stop it first", error=True)
            return False
        try:
            source, name = self._source()
        except LollmsMagicsError as exc:
            self.fail(exc)
            return False
        previous, run = self._run, _Run()
        # Everything the last run showed goes before this one starts: its "done" never sits next to this one.
        with self._lock:
            self._run = run
            self.say(f"reading {name}…")
        self.start.disabled, self.stop.disabled = True, False
        self.progress.value, self.progress.max, self.progress.bar_style = 0, 1, "info"
        self.result.outputs = ()
        if not self.worker.start(lambda: self._summarize(source, name, run)):
            self._run = previous
            self.start.disabled, self.stop.disabled = False, True
            self.say("a summary is still running: Stop it first", error=True)
            return False
        return True

    def cancel(self) -> None:
        """Stop the summary (what Stop does): the requests in flight are cut, the work done is kept."""
        run = self._run
        with self._lock:
            if run.stopping.is_set():
                return
            run.stopping.set()
            self.say("stopping…")
        for binding in self._bindings:
            binding.cancel_all()

    def _update(self, run: _Run, line: str) -> None:
        """Show ``line`` while ``run`` goes on (nothing once it is stopped: the Stop's line stays)."""
        with self._lock:
            if run is self._run and not run.stopping.is_set():
                note = f" · {run.notices[-1]}" if run.notices else ""
                self.say(line + note)

    def _summarize(self, source: Any, name: str, run: _Run) -> None:
        throttle, pieces = Throttle(self.interval), []

        def stream(piece: str) -> None:
            pieces.append(piece)
            if throttle.due():
                text = "".join(pieces)
                self.result.outputs = (_markdown(text + " ▍"),)
                self._update(run, f"writing the summary · {len(text.split())} words")

        used: dict[str, Any] = {}
        try:
            if isinstance(source, KeptFile):
                with source.on_disk() as path:  # on disk only while it is read
                    document = self.session.load_document(path)
            else:
                # A key in it is refused before anything is sent.
                document = self.session.load_document(source)
            target = self.choice.target()
            binding = self.session.binding(target)
            self.choice.ran(target, binding)
            self._bindings = [StoppableBinding(binding, run.stopping)]
            if run.stopping.is_set():  # Stop came before the bindings were there to cut
                raise Cancelled()
            options = {"mode": self.mode.value, "instruction": self.instruction.value.strip() or None,
                       "format": self.format.value.strip() or None, "ctx_size": self.choice.ctx_size()}
            for field in ("instruction", "format"):
                self.session.keys.refuse(options[field] or "", f"the summary's {field}")
            usage = self.session.usage
            summary = summarize(document, self._bindings, stream=stream,
                                progress=lambda event: self._progress(event, run),
                                on_call=lambda response: usage.record(response, binding.name), **options)
            used = self.choice.used(binding)
        except Cancelled:
            self._end(run, "stopped before anything was sent", "warning")
            return
        except LollmsMagicsError as exc:
            self._end(run, str(exc), "danger", error=True)
            return
        except Exception as exc:  # a bug, said in the panel rather than lost in the worker thread
            self._end(run, f"unexpected error: {type(exc).__name__}: {exc}", "danger", error=True)
            return
        finally:
            self._bindings = []
            self.start.disabled, self.stop.disabled = False, True
        self._finish(summary, name, run, used)

    def _progress(self, event: ProgressEvent, run: _Run) -> None:
        if event.phase == "notice":
            run.notices.append(event.message)
            return
        if event.phase in ("done", "stopped"):
            return  # the end is said by _finish, with what the run kept
        run.pace.see(event)
        self.progress.max = max(1, event.total)
        self.progress.value = min(event.done, event.total)
        self._update(run, progress_line(event, run.pace))

    def _end(self, run: _Run, line: str, style: str, *, error: bool = False) -> None:
        """The run's last status line (whatever it showed before, a Stop included)."""
        with self._lock:
            run.stopping.set()  # nothing the run still reports replaces this line
            self.progress.bar_style = style
            self.say(line, error=error)

    def _finish(self, summary: Summary, name: str, run: _Run, used: dict[str, Any]) -> None:
        stopped = run.stopping.is_set()
        self.summary = summary
        text = self.session.keys.redact(summary.text)
        self.result.outputs = (_markdown(text),)
        if summary.complete:  # a document read in one call ends before its planned last step
            self.progress.value = self.progress.max
        figures = (f"{summary.mode}, {summary.chunks} chunk(s), {summary.calls} call(s), "
                   f"{summary.wall_time:.1f} s")
        writer = f" · {used['binding']} `{used['model']}`" if used.get("model") else ""
        # A Stop is a stop, whatever the calls it cut said on their way out.
        if summary.complete:
            state = ""
        elif stopped:
            state = " · stopped"
        else:
            state = f" · incomplete: {summary.error or 'interrupted'}"
        head = self.session.keys.redact(f"**lollms summary** of `{name}` ({figures}){writer}{state}")
        meta = {"panel": "summarize", "source": name, "mode": summary.mode, "chunks": summary.chunks,
                "calls": summary.calls, "cached": summary.cached, "complete": summary.complete,
                "wall_time": round(summary.wall_time, 3), **used}
        if summary.notices:
            meta["notices"] = list(summary.notices)
        if not summary.complete:
            meta["stopped"] = stopped
            meta["error"] = "stopped" if stopped else summary.error
        self.record.markdown(f"{head}\n\n{text}", {"lollms_magics": self.session.keys.redact_data(meta)})
        notes = "".join(f" · {n}" for n in summary.notices[-1:])
        if summary.complete:
            reused = f", {summary.cached} reused" if summary.cached else ""
            self._end(run, f"done in {summary.wall_time:.1f} s: {summary.chunks} chunk(s), "
                           f"{summary.calls} call(s){reused}{notes}", "success")
        elif stopped:
            self._end(run, "stopped; what was done is kept (Summarize again to resume)", "warning")
        else:
            self._end(run, f"{summary.error}; what was done is kept (Summarize again to resume)", "danger",
                      error=True)


def _grey(text: str) -> str:
    return f'<span style="color:#555">{html.escape(text)}</span>'


def _markdown(text: str) -> dict[str, Any]:
    return {"output_type": "display_data", "data": markdown_bundle(text), "metadata": {}}


def _user_namespace() -> dict[str, Any]:
    """The notebook's variables (empty outside IPython)."""
    from IPython.core.interactiveshell import InteractiveShell

    if not InteractiveShell.initialized():
        return {}
    return dict(InteractiveShell.instance().user_ns)
