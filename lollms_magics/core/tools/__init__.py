"""Tools: let the model call the notebook's functions, checked, approved and reported (issue 20).

The interface, shared by the magic (``%%lollms --tools f,g``) and Python:

* :func:`tool` (``@tool`` / ``@tool(safe=True)``) marks a function safe to
  run without approval; :meth:`Tool.from_function` describes a function as a
  JSON Schema from its signature, type hints and docstring
  (:mod:`.describe`).
* ``Session.ask(prompt, tools=[f, g], approve=None, max_rounds=4,
  on_tool=None)`` runs the loop (:func:`ask_with_tools`, :mod:`.loop`): the
  returned :class:`~lollms_magics.response.Response` streams the text of
  every round and, once read, holds ``.tool_runs`` (every :class:`ToolRun`,
  in order), ``.tool_calls`` (every :class:`ToolCall` the model asked for)
  and ``.tool_steps`` (:class:`ToolSteps`: the messages of the calls and
  results, which the conversation keeps for the next prompts; see
  :mod:`lollms_magics.core.history`).
* ``approve``: ``"yes"``/True runs every call; a function
  ``approve(call) -> bool`` is asked before each call of a tool not marked
  safe; None/False runs only safe tools (the others are refused, and the
  model told so).
* ``on_tool(event)`` hears a :class:`ToolEvent` ``"start"`` before a call
  runs and ``"end"`` after every call (refused ones have only the end).
* :class:`ToolCall` is defined in :mod:`lollms_magics.schema` (bindings fill
  ``Response.tool_calls`` with it) and re-exported here.

What the loop checks and how it ends (calls refused, exceptions, keys, the
result budget, Stop, ``max_rounds``) is told in :mod:`.loop`; the records
(:class:`ToolRun`, :class:`ToolEvent`) are in :mod:`.runs`. The bindings
send the tools (``Binding.generate(..., tools=, tool_choice=)``): OpenAI-compatible
servers and the new LoLLMs server stream calls as deltas, Ollama whole in
its lines, the embedded model answers whole (llama-cpp-python's
``chatml-function-calling``); lollms-webui refuses in one line. A server that
cannot stream a call it chose (llama-cpp-python's) is asked whole instead.
"""

from __future__ import annotations

from ...schema import ToolCall
from .describe import Tool, as_tools, json_schema, tool
from .loop import ask_with_tools
from .runs import RESULT_BUDGET, Approval, ToolEvent, ToolRun, ToolSteps

__all__ = [
    "RESULT_BUDGET",
    "Approval",
    "Tool",
    "ToolCall",
    "ToolEvent",
    "ToolRun",
    "ToolSteps",
    "as_tools",
    "ask_with_tools",
    "json_schema",
    "tool",
]
