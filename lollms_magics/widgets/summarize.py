"""The summarize panel: a file (uploaded, a path, a URL, or a variable's name), mode, instruction, Stop.

The summary runs in a worker thread with the session's backend; the
progress bar follows each step and the final summary streams in as
Markdown. Stop cancels the requests in flight (``Response.cancel()``) and
the work ends with what was done (a run with the same input resumes). The
summary also goes into the cell's output as Markdown, with its figures.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LollmsMagicsError
from ..summaries import MODES, summarize
from ..summaries.calls import Cancelled
from ..summaries.progress import ProgressEvent, describe
from .common import Panel, Throttle, markdown_bundle

if TYPE_CHECKING:
    from ..summaries.result import Summary

__all__ = ["StoppableBinding", "SummarizePanel"]

_URL = re.compile(r"^https?://", re.IGNORECASE)


class StoppableBinding:
    """A binding whose answers a Stop button can cut: every stream in flight is cancelled at once."""

    def __init__(self, binding: Any, stop: threading.Event) -> None:
        self._binding = binding
        self._stop = stop
        self._live: set[Any] = set()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # model, host, tokenize, context_size...: the binding's own
        return getattr(self._binding, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        if self._stop.is_set():
            raise Cancelled()
        response = self._binding.generate(*args, **kwargs)
        with self._lock:
            self._live.add(response)
        if self._stop.is_set():  # Stop came while the request was being made: cancel_all missed it
            response.cancel()
        return _Cuttable(response, self)

    def cancel_all(self) -> None:
        with self._lock:
            live = list(self._live)
        for response in live:
            response.cancel()


class _Cuttable:
    """A response that raises ``Cancelled`` when stopped, so a cut answer is never kept as whole."""

    def __init__(self, response: Any, owner: StoppableBinding) -> None:
        self._response = response
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)

    def __iter__(self) -> Any:
        try:
            yield from self._response
        finally:
            with self._owner._lock:
                self._owner._live.discard(self._response)
        if self._owner._stop.is_set():
            raise Cancelled()


class SummarizePanel(Panel):
    """Summarize a document longer than the model's context, with the session's backend."""

    kind = "summarize"
    interval = 0.2

    def _build(self) -> list[Any]:
        w = self.w
        self.upload = w.FileUpload(multiple=False, description="File")
        self.source = w.Text(description="or path", placeholder="a path, a URL or a variable's name",
                             layout=w.Layout(width="520px"))
        self.mode = w.Dropdown(options=list(MODES), value="auto", description="mode")
        wide = w.Layout(width="520px")
        self.instruction = w.Text(description="instruction", layout=wide,
                                  placeholder="what to look for (default: key points)")
        self.format = w.Text(description="form", layout=wide,
                             placeholder="the summary's form: five bullet points, a table…")
        self.start = w.Button(description="Summarize", button_style="primary", icon="compress")
        self.stop = w.Button(description="Stop", button_style="warning", icon="stop", disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=1, description="progress")
        self.step = w.Label()
        self.result = w.Output(layout=w.Layout(border="1px solid #ddd", padding="4px"))
        self.summary: Summary | None = None
        self._stopping = threading.Event()
        self._bindings: list[StoppableBinding] = []
        self.start.on_click(lambda _: self.run())
        self.stop.on_click(lambda _: self.cancel())
        return [w.HTML("<b>lollms summarize</b>"), w.HBox([self.upload, self.source]), self.mode,
                self.instruction, self.format, w.HBox([self.start, self.stop]),
                w.HBox([self.progress, self.step]), self.result, self.status]

    def run(self) -> bool:
        """Start the summary (what Summarize does); False when it could not start."""
        if self.worker.busy:  # a stopped run still winding down keeps its Stop
            self.say("the stopped summary is still ending: start again in a moment" if self._stopping.is_set()
                     else "a summary is still running: Stop it first", error=True)
            return False
        try:
            source, name, folder = self._source()
        except LollmsMagicsError as exc:
            self.fail(exc)
            return False
        stopping = threading.Event()  # this run's own: a later run never clears it
        previous, self._stopping = self._stopping, stopping
        if not self.worker.start(lambda: self._summarize(source, name, folder, stopping)):
            self._stopping = previous
            _remove(folder)
            self.say("a summary is still running: Stop it first", error=True)
            return False
        self.start.disabled, self.stop.disabled = True, False
        self.progress.value, self.progress.bar_style, self.step.value = 0, "info", "starting…"
        self.result.outputs = ()
        return True

    def cancel(self) -> None:
        """Stop the summary (what Stop does): the requests in flight are cut, the work done is kept."""
        self._stopping.set()
        for binding in self._bindings:
            binding.cancel_all()

    def _source(self) -> tuple[Any, str, str | None]:
        """What to summarize, its name, and the temporary folder holding an upload (removed after)."""
        from ..errors import DocumentError, InvalidOptionError

        files = list(self.upload.value)
        if files:
            name = Path(str(files[0]["name"])).name.strip(". ") or "upload.txt"
            folder = tempfile.mkdtemp(prefix="lollms-summarize-")
            try:
                (Path(folder) / name).write_bytes(bytes(files[0]["content"]))
            except OSError as exc:
                _remove(folder)
                raise DocumentError(f"cannot keep the uploaded {name} for reading: {exc.strerror}") from None
            return Path(folder) / name, name, folder
        ref = self.source.value.strip()
        if not ref:
            raise InvalidOptionError("choose a file, or give a path, a URL or a variable's name")
        namespace = _user_namespace()
        if ref.isidentifier() and ref in namespace:
            return namespace[ref], ref, None
        return (ref if _URL.match(ref) else Path(ref).expanduser()), ref, None

    def _summarize(self, source: Any, name: str, folder: str | None, stopping: threading.Event) -> None:
        throttle, pieces = Throttle(self.interval), []

        def stream(piece: str) -> None:
            pieces.append(piece)
            if throttle.due():
                self.result.outputs = (_markdown("".join(pieces) + " ▍"),)

        try:
            source = self.session.load_document(source)  # a key in it is refused before anything is sent
            target = self.session.target()
            self._bindings = [StoppableBinding(self.session.binding(target), stopping)]
            if stopping.is_set():  # Stop came before the bindings were there to cut
                raise Cancelled()
            options = {"mode": self.mode.value, "instruction": self.instruction.value.strip() or None,
                       "format": self.format.value.strip() or None}
            for field in ("instruction", "format"):
                self.session.keys.refuse(options[field] or "", f"the summary's {field}")
            summary = summarize(source, self._bindings, progress=self._progress, stream=stream, **options)
        except Cancelled:
            self.progress.bar_style = "warning"
            self.say("stopped before anything was sent")
            return
        except LollmsMagicsError as exc:
            self.progress.bar_style = "danger"
            self.fail(exc)
            return
        finally:
            self._bindings = []
            self.start.disabled, self.stop.disabled = False, True
            if folder is not None:
                _remove(folder)
                self.upload.value = ()
        self._finish(summary, name, stopped=stopping.is_set())

    def _progress(self, event: ProgressEvent) -> None:
        if event.phase == "notice":
            self.say(event.message)
            return
        self.progress.max = max(1, event.total)
        self.progress.value = min(event.done, event.total)
        self.step.value = describe(event, 0).split("]", 1)[-1].strip()

    def _finish(self, summary: Summary, name: str, *, stopped: bool) -> None:
        self.summary = summary
        text = self.session.keys.redact(summary.text)
        self.result.outputs = (_markdown(text),)
        self.progress.bar_style = "success" if summary.complete else "warning"
        if summary.complete:  # a document read in one call ends before its planned last step
            self.progress.value = self.progress.max
            self.step.value = f"done in {summary.wall_time:.1f} s"
        figures = (f"{summary.mode}, {summary.chunks} chunk(s), {summary.calls} call(s), "
                   f"{summary.wall_time:.1f} s")
        # A Stop is a stop, whatever the calls it cut said on their way out.
        if summary.complete:
            state = ""
        elif stopped:
            state = " · stopped"
        else:
            state = f" · incomplete: {summary.error or 'interrupted'}"
        head = self.session.keys.redact(f"**lollms summary** of `{name}` ({figures}){state}")
        meta = {"panel": "summarize", "source": name, "mode": summary.mode, "chunks": summary.chunks,
                "calls": summary.calls, "complete": summary.complete,
                "wall_time": round(summary.wall_time, 3)}
        if not summary.complete:
            meta["stopped"] = stopped
            meta["error"] = "stopped" if stopped else summary.error
        self.record.markdown(f"{head}\n\n{text}", {"lollms_magics": self.session.keys.redact_data(meta)})
        if summary.complete:
            self.say("done")
        elif stopped:
            self.say("stopped; what was done is kept (run again to resume)")
        else:
            self.say(f"{summary.error}; what was done is kept (run again to resume)", error=True)


def _remove(folder: str | None) -> None:
    """Remove the temporary folder of an upload (nothing when there is none)."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _markdown(text: str) -> dict[str, Any]:
    return {"output_type": "display_data", "data": markdown_bundle(text), "metadata": {}}


def _user_namespace() -> dict[str, Any]:
    """The notebook's variables (empty outside IPython)."""
    from IPython.core.interactiveshell import InteractiveShell

    if not InteractiveShell.initialized():
        return {}
    return dict(InteractiveShell.instance().user_ns)
