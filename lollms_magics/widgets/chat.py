"""The chat panel: the conversation, a question box, Send and Stop, image attachments.

Each exchange is kept once: as the Markdown output it leaves in the cell
(the record a saved notebook keeps and a static viewer shows), updated in
place while the answer streams. In JupyterLab and Notebook 7 the panel's
conversation box (:class:`ChatBox`, a small anywidget module) shows those
outputs inside the panel, capped in height, hides them below it, and keeps
the newest text in view unless the user scrolled up; the widget state holds
none of the text. Ctrl/Cmd+Enter or Shift+Enter in the question box sends.

The answer streams in a worker thread, so the kernel runs other cells
meanwhile; the browser gets at most one update every ``interval`` seconds
(however many pieces arrive). Stop cancels the answer (``Response.cancel()``,
safe from any thread) and the text so far stays. The conversation is the
session's: the next ``%%lollms`` cell continues what was said here, and a
panel opened on a conversation says how many exchanges it continues.
"""

from __future__ import annotations

import html
import threading
import uuid
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..errors import LollmsMagicsError, MissingDependencyError
from .common import Panel, Throttle

if TYPE_CHECKING:
    from ..response import Response

__all__ = ["ChatPanel", "exchange_markdown"]

_CURSOR = " ▍"
# The box scrolls itself (chat_box.js): the browser's scroll anchoring could move a reader's
# view when the entry streaming in is replaced by its next copy.
_CSS = """
.lollms-chat-box { max-height: 480px; overflow-y: auto; padding: 0 8px; overflow-anchor: none;
  border: 1px solid var(--jp-border-color2, #ddd); }
.lollms-chat-entry + .lollms-chat-entry { border-top: 1px solid var(--jp-border-color3, #eee); }
"""


def exchange_markdown(prompt: str, answer: str, who: str, images: list[str] | None = None,
                      note: str = "") -> str:
    """One exchange as plain Markdown: the prompt quoted, then the answer, then a quiet line."""
    quoted = "\n".join(f"> {line}" if line else ">" for line in prompt.splitlines())
    attached = f"\n>\n> *[+ {', '.join(images)}]*" if images else ""
    tail = f"\n\n*{note}*" if note else ""
    return f"**You:**\n\n{quoted}{attached}\n\n**{who}:**\n\n{answer}{tail}"


def figures(response: Response) -> str:
    """Model, tokens, speed and time of an answer, as one line."""
    parts = [str(response.model or response.binding)]
    if response.completion_tokens is not None:
        parts.append(f"{response.completion_tokens} tokens")
    if response.tokens_per_second is not None:
        parts.append(f"{response.tokens_per_second:.1f} tok/s")
    if response.duration is not None:
        parts.append(f"{response.duration:.1f} s")
    return " · ".join(parts)


def _one_line(text: str, limit: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@cache
def chat_box_class() -> type:
    """The conversation box's widget class (anywidget is imported when a chat panel is first built)."""
    try:
        import anywidget
    except ImportError as exc:
        raise MissingDependencyError("the chat panel needs anywidget: pip install anywidget") from exc

    class ChatBox(anywidget.AnyWidget):  # type: ignore[misc]
        """Shows the cell's exchange records inside the panel (see chat_box.js); holds no text itself."""

        _esm = (Path(__file__).parent / "chat_box.js").read_text(encoding="utf-8")
        _css = _CSS

    return ChatBox


class ChatPanel(Panel):
    """Talk with the session's backend; ``interval`` bounds the browser updates (seconds)."""

    kind = "chat"
    interval = 0.1

    def _build(self) -> list[Any]:
        w = self.w
        self.box = chat_box_class()()
        self.prompt = w.Textarea(placeholder="Ask something (Ctrl+Enter or Shift+Enter sends)", rows=3,
                                 layout=w.Layout(width="100%"))
        self.prompt.add_class("lollms-question")
        self.send = w.Button(description="Send", button_style="primary", icon="paper-plane",
                             tooltip="send the question (Ctrl+Enter or Shift+Enter in the box)")
        self.stop = w.Button(description="Stop", button_style="warning", icon="stop", disabled=True)
        self.clear = w.Button(description="New conversation", tooltip="forget the conversation")
        self.attach = w.FileUpload(accept="image/*", multiple=True, description="Image")
        # The last request as it went out (as %lollms sent shows it), on demand: kept out of
        # the widget state until asked for, and emptied when hidden.
        self.sent = w.ToggleButton(description="Sent", icon="eye",
                                   tooltip="show the last request as it went out (keys masked)")
        self.sent.add_class("lollms-chat-sent-toggle")
        self.sent_view = w.HTML("")
        self.sent_view.add_class("lollms-chat-sent")
        self.sent.observe(lambda _: self._show_sent(), names="value")
        self._response: Response | None = None
        self._stopping = threading.Event()
        self.send.on_click(lambda _: self.ask())
        self.stop.on_click(lambda _: self.cancel())
        self.clear.on_click(lambda _: self._new())
        self.box.on_msg(self._on_box_message)
        return [w.HTML("<b>lollms chat</b>"), self.box, self.prompt,
                w.HBox([self.send, self.stop, self.attach, self.clear, self.sent]), self.status,
                self.sent_view]

    def _ipython_display_(self) -> None:
        super()._ipython_display_()
        earlier = self.session.history()
        if earlier:  # the exchanges are in the cells that made them: say what this one continues
            asked = " · ".join(f"“{_one_line(e.prompt)}”" for e in earlier[-5:])
            more = "… " if len(earlier) > 5 else ""
            self.record.markdown(self.session.keys.redact(
                f"*continues a conversation of {len(earlier)} exchange(s): {more}{asked}; "
                "New conversation starts afresh*"))

    def _on_box_message(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        """Ctrl/Cmd+Enter or Shift+Enter in the question box: send what it holds."""
        if isinstance(content, dict) and content.get("event") == "send":
            self.prompt.value = str(content.get("text", ""))
            self.ask()

    def ask(self) -> bool:
        """Send the question box (what Send does); False when nothing was sent."""
        prompt = self.prompt.value.strip()
        if not prompt:
            self.say("write a prompt first", error=True)
            return False
        if self.worker.busy:  # a stopped answer still winding down keeps its Stop
            self.say("the stopped answer is still ending: send again in a moment" if self._stopping.is_set()
                     else "an answer is still coming: Stop it first", error=True)
            return False
        files = list(self.attach.value)
        images = [bytes(f["content"]) for f in files]
        names = [str(f.get("name", "image")) for f in files]
        stopping = threading.Event()  # this answer's own: a later Send never clears it
        previous, self._stopping = self._stopping, stopping
        # All set before the worker starts: a refusal it shows at once (a key in the
        # prompt) puts the prompt back, re-enables Send and says why, and must stay so.
        buttons = self.send.disabled, self.stop.disabled
        self.say("")
        self.prompt.value = ""
        self.send.disabled, self.stop.disabled = True, False
        if not self.worker.start(lambda: self._answer(prompt, images, names, stopping)):
            self._stopping = previous
            self.prompt.value = prompt
            self.send.disabled, self.stop.disabled = buttons  # the answer still coming keeps its Stop
            self.say("an answer is still coming: Stop it first", error=True)
            return False
        self.attach.value = ()
        return True

    def cancel(self) -> None:
        """Stop the answer coming in (what Stop does); the text so far stays."""
        self._stopping.set()
        response = self._response
        if response is not None:
            response.cancel()

    def _new(self) -> None:
        self.session.reset()
        self.say("")
        self.record.markdown("*new conversation: what was said above is forgotten*")

    def _answer(self, prompt: str, images: list[bytes], names: list[str], stopping: threading.Event) -> None:
        """Ask and stream the answer into the exchange's record (runs in the worker thread)."""
        try:  # refused at once (a key in the prompt): nothing was sent, nothing is recorded
            response = self.session.ask(prompt, images=images or None, key=f"panel-chat:{uuid.uuid4().hex}")
        except LollmsMagicsError as exc:
            self._give_back(prompt, exc)
            return
        self._response = response
        if stopping.is_set():  # Stop came while the request was being made
            response.cancel()
        who = f"{response.binding}:{response.model}" if response.model else response.binding
        name = f"exchange-{uuid.uuid4().hex}"  # one output per exchange, updated in place
        self._show(name, exchange_markdown(prompt, _CURSOR, who, names))
        throttle, pieces = Throttle(self.interval), []
        error: LollmsMagicsError | None = None
        try:
            for piece in response:
                pieces.append(piece)
                if throttle.due():
                    self._show(name, exchange_markdown(prompt, "".join(pieces) + _CURSOR, who, names))
        except LollmsMagicsError as exc:
            error = exc
        finally:
            self._response = None
        self._finish(name, prompt, response, who, names, error)

    def _finish(self, name: str, prompt: str, response: Response, who: str, names: list[str],
                error: LollmsMagicsError | None) -> None:
        # The record's last line says how the answer ended, once: no second line in the status.
        meta = cast("dict[str, Any]", self.session.keys.redact_data({**response.metadata(), "panel": "chat"}))
        if error is not None and not response.text:  # nothing came: the question goes back in the box
            self._show(name, exchange_markdown(prompt, f"*not answered: {error}*", who, names), meta)
            if not self.prompt.value:
                self.prompt.value = prompt
            self._ready()
            return
        note = figures(response)
        if error is not None:
            note += f" · incomplete: {error}"
        elif not response.done:
            note += " · stopped: the answer was cut short"
        self._show(name, exchange_markdown(prompt, response.text, who, names, note), meta)
        self._ready()

    def _show(self, name: str, text: str, meta: dict[str, Any] | None = None) -> None:
        self.record.markdown(self.session.keys.redact(text), {"lollms_magics": meta} if meta else None,
                             replace=name)

    def _give_back(self, prompt: str, error: LollmsMagicsError) -> None:
        """Refused before sending: the prompt goes back in the box, to fix or resend, and the reason shows."""
        if not self.prompt.value:
            self.prompt.value = prompt
        self.fail(error)
        self._ready()

    def _ready(self) -> None:
        self.send.disabled, self.stop.disabled = False, True
        self._show_sent()

    def _show_sent(self) -> None:
        """Fill the Sent view with the last request (when it is open), or empty it."""
        if not self.sent.value:
            self.sent_view.value = ""
            return
        from ..core.sent import describe

        request = self.session.last_request
        text = "nothing sent yet in this session" if request is None else describe(
            request, self.session.keys.redact)
        self.sent_view.value = ("<pre style='white-space: pre-wrap; max-height: 320px; overflow: auto'>"
                                f"{html.escape(text)}</pre>")

    def _unexpected(self, exc: BaseException) -> None:
        self.fail(exc)
        self._ready()
