"""The chat panel: the conversation, a prompt box, Send and Stop, image attachments.

The answer streams in a worker thread, so the kernel runs other cells
meanwhile; the browser gets at most one update every ``interval`` seconds
(however many pieces arrive), rendered as Markdown by the frontend. Stop
cancels the answer (``Response.cancel()``, safe from any thread) and the
text so far stays. The conversation is the session's: exchanges made by
``%%lollms`` cells show here, and the next cell continues what was said
here. Each exchange also leaves its Markdown in the cell's output (the
record a saved notebook keeps).
"""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Any

from ..errors import LollmsMagicsError
from .common import Panel, Throttle, markdown_bundle

if TYPE_CHECKING:
    from ..response import Response

__all__ = ["ChatPanel", "exchange_markdown"]

_CURSOR = " ▍"


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


class ChatPanel(Panel):
    """Talk with the session's backend; ``interval`` bounds the browser updates (seconds)."""

    kind = "chat"
    interval = 0.1

    def _build(self) -> list[Any]:
        w = self.w
        box = w.Layout(border="1px solid #ddd", padding="4px", max_height="480px", overflow="auto")
        self.conversation = w.Output(layout=box)
        self.answer = w.Output()
        self.prompt = w.Textarea(placeholder="Ask something, then Send", rows=3,
                                 layout=w.Layout(width="100%"))
        self.send = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self.stop = w.Button(description="Stop", button_style="warning", icon="stop", disabled=True)
        self.clear = w.Button(description="New conversation", tooltip="forget the conversation")
        self.attach = w.FileUpload(accept="image/*", multiple=True, description="Image")
        self._response: Response | None = None
        self._stopping = threading.Event()
        self.send.on_click(lambda _: self.ask())
        self.stop.on_click(lambda _: self.cancel())
        self.clear.on_click(lambda _: self._new())
        self.show_history()
        return [w.HTML("<b>lollms chat</b>"), self.conversation, self.answer, self.prompt,
                w.HBox([self.send, self.stop, self.attach, self.clear]), self.status]

    def show_history(self) -> None:
        """Show the session's conversation (exchanges from cells and panels alike)."""
        entries = [
            exchange_markdown(e.prompt, e.answer, e.backend or "model",
                              [f"{len(e.images)} image(s)"] if e.images else None)
            for e in self.session.history()
        ]
        self.conversation.outputs = tuple(_output(text) for text in entries)

    def ask(self) -> bool:
        """Send the prompt box (what Send does); False when nothing was sent."""
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
        self.show_history()
        self.say("new conversation")

    def _answer(self, prompt: str, images: list[bytes], names: list[str], stopping: threading.Event) -> None:
        """Ask and stream the answer into the panel (runs in the worker thread)."""
        self._live(prompt, _CURSOR, "…", names)
        try:
            response = self.session.ask(prompt, images=images or None, key=f"panel-chat:{uuid.uuid4().hex}")
        except LollmsMagicsError as exc:
            self._give_back(prompt, exc)
            return
        self._response = response
        if stopping.is_set():  # Stop came while the request was being made
            response.cancel()
        who = f"{response.binding}:{response.model}" if response.model else response.binding
        throttle, pieces = Throttle(self.interval), []
        error: LollmsMagicsError | None = None
        try:
            for piece in response:
                pieces.append(piece)
                if throttle.due():
                    self._live(prompt, "".join(pieces) + _CURSOR, who, names)
        except LollmsMagicsError as exc:
            error = exc
        finally:
            self._response = None
        self._finish(prompt, response, who, names, error)

    def _finish(self, prompt: str, response: Response, who: str, names: list[str],
                error: LollmsMagicsError | None) -> None:
        if error is not None and not response.text:
            self._give_back(prompt, error)
            return
        note = figures(response)
        if error is not None:
            note += f" · incomplete: {error}"
        elif not response.done:
            note += " · stopped: the answer was cut short"
        text = self.session.keys.redact(exchange_markdown(prompt, response.text, who, names, note))
        self.answer.outputs = ()
        self.conversation.outputs = (*self.conversation.outputs, _output(text))
        meta = self.session.keys.redact_data({**response.metadata(), "panel": "chat"})
        self.record.markdown(text, {"lollms_magics": meta})
        if error is not None:
            self.fail(error)
        else:
            self.say("stopped; the text so far is kept" if not response.done else "")
        self._ready()

    def _give_back(self, prompt: str, error: LollmsMagicsError) -> None:
        """No answer came: the prompt goes back in the box, to fix or resend, and the error shows."""
        self.answer.outputs = ()
        if not self.prompt.value:
            self.prompt.value = prompt
        self.fail(error)
        self._ready()

    def _live(self, prompt: str, answer: str, who: str, names: list[str]) -> None:
        text = self.session.keys.redact(exchange_markdown(prompt, answer, who, names))
        self.answer.outputs = (_output(text),)

    def _ready(self) -> None:
        self.send.disabled, self.stop.disabled = False, True

    def _unexpected(self, exc: BaseException) -> None:
        self.fail(exc)
        self._ready()


def _output(markdown: str) -> dict[str, Any]:
    """An Output widget's entry that the frontend renders as Markdown."""
    return {"output_type": "display_data", "data": markdown_bundle(markdown), "metadata": {}}
