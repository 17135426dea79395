"""The tool loop: offer the tools, run the calls the model asks for, send the results back.

Each round sends the conversation with the tools' schemas; when the answer
asks for calls, each is checked and, if allowed, run in this thread (the
kernel's), its result sent back as a ``"tool"`` message, and the model asked
again, until it answers without calls or ``max_rounds`` rounds of calls have
run (the model is then asked once more with ``tool_choice="none"``; calls it
still asks for are not run).

A call is refused, and the refusal sent to the model as the tool's result,
when it names no offered tool, its arguments are not a JSON object or do not
validate against the tool's schema, they hold a known key, or it was not
approved. An exception raised by the function is sent to the model as the
tool's error and the loop goes on. A result is sent as text: strings as they
are, JSON-able values as JSON, others with ``str``; cut to ``budget``
characters; not sent when it holds a known key.

Stop (:meth:`Response.cancel`, from any thread) ends the loop: between calls,
during the model's answer, and during a call, where a pure-Python function is
interrupted at its next line (a blocking C call ends first); ``Ctrl-C``
(KeyboardInterrupt) ends it the usual way.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jsonschema

from ...errors import BindingError, InvalidOptionError, StreamBrokenError
from ...response import Response
from ...schema import ToolCall
from .describe import Tool, as_tools
from .runs import RESULT_BUDGET, Approval, ToolEvent, ToolRun, ToolSteps, as_text, raise_in

if TYPE_CHECKING:
    from ...bindings.base import Binding
    from ..keys import KeyStore

__all__ = ["ask_with_tools"]

# Servers (binding name, host) whose streamed answers with tools broke empty: asked whole.
_WHOLE: set[tuple[str, str]] = set()


def _server_of(binding: Binding) -> tuple[str, str]:
    return binding.name, str(getattr(binding, "host", "") or "")


class _Stopped(BindingError):
    """Ends the loop after a Stop (the Response treats a BindingError after a cancel as the stop)."""


class _ToolStopped(BaseException):
    """Raised inside a running function by Stop (a BaseException, so ``except Exception`` lets it out)."""


def ask_with_tools(
    binding: Binding,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Callable[..., Any] | Tool] | Callable[..., Any] | Tool,
    *,
    system: str | None = None,
    stream: bool = True,
    keys: KeyStore | None = None,
    approve: Approval = None,
    max_rounds: int = 4,
    on_tool: Callable[[ToolEvent], None] | None = None,
    budget: int = RESULT_BUDGET,
    tool_choice: Any = None,
    **options: Any,
) -> Response:
    """Ask ``binding`` with ``tools`` offered; the returned response runs the loop as it is read.

    See the module docstring. ``approve`` is ``"yes"``/True (run every call),
    a function ``approve(call) -> bool`` asked before each call of a tool not
    marked safe, or None/False (only safe tools run). Bad tools, a binding
    with no tool API and bad options fail here, before anything is sent.
    """
    offered = as_tools(tools)
    if not isinstance(max_rounds, int) or max_rounds < 0:
        raise InvalidOptionError("max_rounds must be a whole number, 0 or more")
    if isinstance(approve, str) and approve != "yes":
        raise InvalidOptionError('approve must be "yes", True, a function or None')
    stream = stream and _server_of(binding) not in _WHOLE
    loop = _Loop(binding, offered, system, stream, keys, approve, max_rounds, on_tool, budget, options)
    first = binding.generate(
        list(messages), system=system, stream=stream, tools=loop.schemas,
        tool_choice="none" if max_rounds == 0 else tool_choice, **options,
    )
    outer = Response(first.binding, first.model, first.options)
    outer.ignored_options = list(first.ignored_options)
    outer.on_abort(loop.abort)
    outer.tool_steps = loop.steps  # type: ignore[attr-defined]  # what the conversation keeps of the calls
    loop.outer = outer
    loop.tool_choice = tool_choice
    outer._source = loop.rounds(list(messages), first)
    return outer


class _Loop:
    def __init__(
        self,
        binding: Binding,
        tools: list[Tool],
        system: str | None,
        stream: bool,
        keys: KeyStore | None,
        approve: Approval,
        max_rounds: int,
        on_tool: Callable[[ToolEvent], None] | None,
        budget: int,
        options: dict[str, Any],
    ) -> None:
        self.binding = binding
        self.tools = {t.name: t for t in tools}
        self.schemas = [t.schema() for t in tools]
        self.system, self.stream, self.keys = system, stream, keys
        self.approve, self.max_rounds, self.on_tool, self.budget = approve, max_rounds, on_tool, budget
        self.options = options
        self.tool_choice: Any = None
        self.outer: Response | None = None
        self.current: Response | None = None
        self.lock = threading.Lock()
        self.running: int | None = None  # the thread running a function, for Stop to interrupt it
        self.steps = ToolSteps()

    # -- Stop ----------------------------------------------------------------------

    def abort(self) -> None:
        current = self.current
        if current is not None:
            current.cancel()
        with self.lock:
            if self.running is not None:
                raise_in(self.running, _ToolStopped)

    def _check_stop(self) -> None:
        assert self.outer is not None
        if self.outer.cancelled:
            raise _Stopped("stopped", binding=self.binding.name)

    # -- rounds --------------------------------------------------------------------

    def rounds(self, history: list[Any], first: Response) -> Iterator[str]:
        outer = self.outer
        assert outer is not None
        current, done_rounds, wrote = first, 0, False
        while True:
            self.current = current
            self._check_stop()
            before = wrote  # text of earlier rounds: this round's is set apart by a blank line
            try:
                for chunk in current:
                    if before:
                        yield "\n\n"
                        before = False
                    wrote = True
                    yield chunk
            except StreamBrokenError:
                if not self._ask_whole(current):
                    raise
                current = self._generate(history, last=done_rounds >= self.max_rounds)
                continue
            self._absorb(current)
            self._check_stop()
            calls = list(current.tool_calls)
            self.steps.reply = current.text
            if not calls:
                return
            outer.tool_calls.extend(calls)
            if done_rounds >= self.max_rounds:
                for call in calls:
                    self._end(ToolRun(call, refused="no rounds of calls left", round=done_rounds + 1))
                outer.notes.append(
                    f"the model still asked for {len(calls)} call(s) after {self.max_rounds} round(s) "
                    "of tools; they were not run (raise max_rounds / --max-rounds)"
                )
                return
            done_rounds += 1
            asked = {"role": "assistant", "content": current.text, "tool_calls": calls}
            history.append(asked)
            self.steps.messages.append(asked)
            for call in calls:
                run = self._run(call, done_rounds)
                result = {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": run.sent}
                history.append(result)
                self.steps.messages.append(result)
                self._check_stop()
            current = self._generate(history, last=done_rounds >= self.max_rounds)

    def _generate(self, history: list[Any], last: bool) -> Response:
        """The next round's request; the last one asks the model to answer (``tool_choice="none"``)."""
        with warnings.catch_warnings():  # the first round warned about ignored options already
            warnings.simplefilter("ignore")
            return self.binding.generate(
                history, system=self.system, stream=self.stream, tools=self.schemas,
                tool_choice="none" if last else self.tool_choice, **self.options,
            )

    def _ask_whole(self, broken: Response) -> bool:
        """After a streamed round broke: whether to ask it again whole (and from now on, for this server).

        llama-cpp-python's server cannot stream a call its model chose
        ("Automatic streaming tool choice is not supported"): it opens the
        stream, then ends it empty. A round that broke before any text or
        call is asked again without streaming, once.
        """
        if not self.stream or broken.tool_calls or broken._chunks or self.outer is None:
            return False
        if self.outer.cancelled:
            return False
        self.stream = False
        _WHOLE.add(_server_of(self.binding))
        # The server drops the connection it broke the stream on, though it looked reusable.
        self.binding.close()
        self.outer.notes.append(
            "the server ended a streamed answer with tools before it began; asked again without "
            "streaming (remembered for this server)"
        )
        return True

    def _absorb(self, current: Response) -> None:
        outer = self.outer
        assert outer is not None
        outer.model = current.model or outer.model
        outer.finish_reason = current.finish_reason
        if current.reasoning:
            outer.add_reasoning(current.reasoning)
        for name in ("prompt_tokens", "completion_tokens"):
            value = getattr(current, name)
            if value is not None:
                setattr(outer, name, (getattr(outer, name) or 0) + value)
        outer.notes.extend(n for n in current.notes if n not in outer.notes)

    # -- one call -------------------------------------------------------------------

    def _run(self, call: ToolCall, round_: int) -> ToolRun:
        keys = self.keys
        run = ToolRun(call, round=round_)
        if keys is not None and keys.holds_secret(call.raw):
            # Shown and kept without the key; never run with it.
            run.call = ToolCall(call.id, call.name, keys.redact_data(call.arguments), keys.redact(call.raw))  # type: ignore[arg-type]
            run.refused = "its arguments hold an API key; it was not run"
            return self._end(run)
        tool = self.tools.get(call.name)
        refusal = self._refusal(call, tool)
        if refusal is not None or tool is None:
            run.refused = refusal
            return self._end(run)
        if not (tool.safe or self._approved(call)):
            run.refused = (
                "the user did not approve this call"
                if callable(self.approve)
                else f"{tool.name} is not marked safe and calls were not approved "
                "(approve=, --yes, or @tool(safe=True))"
            )
            return self._end(run)
        run.approved = True
        if self.on_tool is not None:
            self.on_tool(ToolEvent("start", run))
        started = time.perf_counter()
        try:
            value = self._call(tool, call.arguments)
        except _ToolStopped:
            run.stopped, run.error = True, "stopped by the user"
            with self.lock:  # the interrupt may have landed in _call's own cleanup
                self.running = None
        except KeyboardInterrupt:
            run.stopped, run.error = True, "interrupted by the user"
            run.duration = time.perf_counter() - started
            self._end(run)
            raise
        except Exception as exc:  # the tool's failure is the model's to read, not the cell's
            run.error = f"{type(exc).__name__}: {exc}"
        else:
            self._result(run, value)
        run.duration = time.perf_counter() - started
        if keys is not None and run.error and keys.holds_secret(run.error):
            run.error = keys.redact(run.error)
        self._end(run)
        if run.stopped:
            raise _Stopped("stopped during a call", binding=self.binding.name)
        return run

    def _refusal(self, call: ToolCall, tool: Tool | None) -> str | None:
        if tool is None:
            offered = ", ".join(self.tools) or "none"
            return f"there is no tool named {call.name!r} (the tools are: {offered})"
        if not call.well_formed:
            return f"its arguments are not a JSON object: {call.raw[:200]!r}"
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(tool.parameters).iter_errors(call.arguments)
        )
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path)
            return f"invalid arguments{f' at {where}' if where else ''}: {error.message}"
        return None

    def _approved(self, call: ToolCall) -> bool:
        approve = self.approve
        if approve == "yes" or approve is True:
            return True
        if callable(approve):
            return bool(approve(call))
        return False

    def _call(self, tool: Tool, arguments: dict[str, Any]) -> Any:
        tid = threading.get_ident()
        try:
            with self.lock:
                self.running = tid
            self._check_stop_in_call()
            return tool(arguments)
        finally:
            with self.lock:
                self.running = None
                raise_in(tid, None)  # an interrupt sent as the function returned: dropped

    def _check_stop_in_call(self) -> None:
        assert self.outer is not None
        if self.outer.cancelled:
            raise _ToolStopped

    def _result(self, run: ToolRun, value: Any) -> None:
        text = as_text(value)
        if self.keys is not None and self.keys.holds_secret(text):
            run.error = "the result holds an API key, so it was not sent"
            return
        if len(text) > self.budget:
            cut = len(text) - self.budget
            text = text[: self.budget] + (
                f"\n[... {cut} more characters cut: the result is over the {self.budget}-character budget]"
            )
            run.trimmed = True
        run.result = text

    def _end(self, run: ToolRun) -> ToolRun:
        assert self.outer is not None
        self.outer.tool_runs.append(run)
        if self.on_tool is not None:
            self.on_tool(ToolEvent("end", run))
        return run
