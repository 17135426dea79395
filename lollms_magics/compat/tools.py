"""lollms-client's ``generate_with_tools``, on the tool loop of ``Session.ask(tools=[...])``.

``lc.generate_with_tools(prompt, tools, system_prompt="", temperature=0.7,
n_predict=4096, max_tool_rounds=10, streaming_callback=None,
auto_execute=True)`` takes lollms-client's inline tools, ``{"name": ...,
"callable": fn, "description": ...}`` dicts, and plain functions (or
:class:`~lollms_magics.core.tools.Tool`). The arguments' schema comes from
each function's signature and type hints (:mod:`lollms_magics.core.tools`),
so a dict's ``"parameters"`` list is not needed; its ``"description"``
replaces the docstring's. lollms-client's tool *files* (paths to tool
scripts) are refused in one line: give the functions themselves.

The calls go through the server's own tool API (OpenAI's ``tools``,
Ollama's, the new LoLLMs server's; lollms-webui has none and fails in one
line), not through ``<tool>`` tags in the text. With ``auto_execute=True``
(the default, as in lollms-client) every call runs; with ``False`` the first
call the model asks for is returned as ``"pending_tool"`` and nothing runs.

It returns lollms-client's dict::

    {"response": "final text",
     "tool_calls": [{"round": 1, "name": "f", "parameters": {...}, "raw": "{...}"}],
     "tool_results": [{"round": 1, "name": "f", "result": {"output": "...", "success": True}}],
     "rounds": 2}

(a failed or refused call's result is ``{"error": "...", "success": False}``;
``rounds`` counts the model's answers). A failure gives ``"response":
"[Error during generation: <one line>]"`` with the calls made so far, and
reaches the callback as ``MSG_TYPE_EXCEPTION``. The callback hears the
answer's pieces as ``MSG_TYPE_CHUNK``, and each call as
``MSG_TYPE_TOOL_CALL`` (``{"name", "parameters"}``) before it runs and
``MSG_TYPE_TOOL_OUTPUT`` (its result dict) after.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import LollmsMagicsError, UnsupportedFeatureError
from .callbacks import Callback, failure, read_answer
from .enums import MSG_TYPE
from .generation import Generating

if TYPE_CHECKING:
    from ..core.tools import Tool, ToolEvent, ToolRun
    from ..response import Response
    from ..schema import ToolCall

__all__ = ["ToolCalling"]


class ToolCalling(Generating):
    """``generate_with_tools`` of :class:`~lollms_magics.compat.client.LollmsClient`."""

    def generate_with_tools(
        self,
        prompt: str,
        tools: Sequence[Any],
        system_prompt: str = "",
        temperature: float = 0.7,
        n_predict: int = 4096,
        max_tool_rounds: int = 10,
        streaming_callback: Callback | None = None,
        auto_execute: bool = True,
        **extra: Any,
    ) -> dict[str, Any]:
        """Answer ``prompt`` letting the model call ``tools``; lollms-client's result dict (see module)."""
        offered = [_as_tool(item) for item in tools]
        callback = streaming_callback
        if not offered:  # lollms-client answers without tools then
            text = self.generate_text(prompt, system_prompt=system_prompt, temperature=temperature,
                                      n_predict=n_predict, streaming_callback=callback, **extra)
            return {"response": text, "tool_calls": [], "tool_results": [], "rounds": 0}
        pending: list[ToolCall] = []
        held: list[Response] = []

        def hold(call: ToolCall) -> bool:  # auto_execute=False: keep the first call, run nothing
            pending.append(call)
            if held:
                held[0].cancel()
            return False

        options = {k: v for k, v in extra.items() if k not in ("think", "reasoning_effort", "debug")}
        try:
            response = self.ask(
                prompt, system=system_prompt or None, tools=offered, history=False,
                approve="yes" if auto_execute else hold, max_rounds=max_tool_rounds,
                on_tool=_announce(callback), stream=True, temperature=temperature, n_predict=n_predict,
                **options,
            )
        except LollmsMagicsError as exc:
            return _failed(failure(exc, callback, self.keys.redact)["error"], [])
        held.append(response)
        answer = read_answer(response, callback, self.keys.redact)
        runs: list[ToolRun] = list(getattr(response, "tool_runs", []))
        if pending:
            record = _call_record(pending[0], 1)
            return {"response": response.text.strip(), "tool_calls": [record], "tool_results": [],
                    "pending_tool": record, "rounds": 1}
        if isinstance(answer, dict):
            return _failed(str(answer["error"]), runs)
        return {**_records(runs), "response": answer.strip(), "rounds": _rounds(runs)}


def _as_tool(item: Any) -> Tool:
    """A lollms-client inline tool dict, a function or a Tool, as our Tool; a tool file is refused."""
    from pathlib import Path

    from ..core.tools import Tool

    if isinstance(item, Tool):
        return item
    if isinstance(item, (str, Path)):
        raise UnsupportedFeatureError(
            f"generate_with_tools: tool files ({item}) are not read here; give the functions themselves "
            '(a function, or {"name": ..., "callable": fn})'
        )
    if isinstance(item, dict):
        fn = item.get("callable")
        if not callable(fn):
            raise UnsupportedFeatureError(
                f"generate_with_tools: the tool {item.get('name')!r} has no callable"
            )
        made = Tool.from_function(fn, name=item.get("name"))
        if item.get("description"):
            made.description = str(item["description"])
        return made
    return Tool.from_function(item)


def _announce(callback: Callback | None) -> Callable[[ToolEvent], None] | None:
    if callback is None:
        return None

    def hear(event: ToolEvent) -> None:
        run = event.run
        if event.kind == "start":
            callback(run.call.name, MSG_TYPE.MSG_TYPE_TOOL_CALL,
                     {"name": run.call.name, "parameters": dict(run.call.arguments)})
        else:
            callback(run.sent, MSG_TYPE.MSG_TYPE_TOOL_OUTPUT, _result(run))

    return hear


def _call_record(call: ToolCall, round_: int) -> dict[str, Any]:
    return {"round": round_, "name": call.name, "parameters": dict(call.arguments), "raw": call.raw}


def _result(run: ToolRun) -> dict[str, Any]:
    if run.refused is not None or run.error is not None:
        return {"error": run.sent, "success": False}
    return {"output": run.result or "", "success": True}


def _records(runs: list[ToolRun]) -> dict[str, Any]:
    return {
        "tool_calls": [_call_record(r.call, r.round) for r in runs],
        "tool_results": [{"round": r.round, "name": r.call.name, "result": _result(r)} for r in runs],
    }


def _rounds(runs: list[ToolRun]) -> int:
    """The model's answers: one per round of calls, and the final one."""
    return (max(r.round for r in runs) if runs else 0) + 1


def _failed(message: str, runs: list[ToolRun]) -> dict[str, Any]:
    return {**_records(runs), "response": f"[Error during generation: {message}]", "rounds": _rounds(runs)}
