"""``%%lollms --tools f,g``: the functions named, each call approved and shown, then collapsed.

The loop itself is the Session's (:mod:`lollms_magics.core.tools`): it
checks every call and runs it in the kernel. This module gives it what a
cell needs:

- the functions named on the line, looked up in the notebook (a name that
  is not a function there is a ``UsageError``);
- the approval: ``--yes`` runs every call of the cell; otherwise a
  function marked ``@tool(safe=True)`` runs, and any other call waits for a
  ``y`` typed at ``input()``. That prompt works in Jupyter (the kernel asks
  the front end for a line, even while the cell runs) and in a terminal. A
  widget button would not: its click is a message the busy kernel reads only
  after the cell ends. Where there is no input at all (a notebook run
  headless by nbclient or papermill) the call is refused, and the cell says
  how to allow it;
- the display: each call and its result appear as they happen, in one
  display above the answer (where the calls happened), which becomes the
  collapsed ``<details>`` list once the answer is complete (kept in the
  saved notebook, with no empty output left); a terminal gets one line per
  call;
- on replay, a line for each function that returned something else than
  when the notebook was recorded (the model's answers are the recorded ones).
"""

from __future__ import annotations

import builtins
import html
import sys
from collections.abc import Callable
from typing import Any

from IPython.core.error import StdinNotImplementedError, UsageError

from ..core.interpolate import lookup
from ..replay.tools import call_label
from .plain import say

__all__ = ["ToolsView", "for_cell", "functions"]

_PREVIEW = 600  # characters of a result shown in the cell (the model got up to its budget)
_LIVE_PREVIEW = 120


def functions(namespace: dict[str, Any], spec: str) -> list[Callable[..., Any]]:
    """The functions ``--tools F,G`` names in ``namespace``; ``UsageError`` for a name that is none."""
    names = [name.strip() for name in spec.split(",") if name.strip()]
    if not names:
        raise UsageError("%lollms: --tools needs the names of functions, such as --tools mean,top_rows")
    found = []
    for name in names:
        try:
            value = lookup(name, namespace)
        except LookupError:
            raise UsageError(
                f"%lollms: --tools {name}: no function of that name in the notebook; define it first"
            ) from None
        if not callable(value):
            raise UsageError(f"%lollms: --tools {name}: that is a {type(value).__name__}, not a function")
        found.append(value)
    return found


def for_cell(
    args: Any, namespace: dict[str, Any], *, rich: bool, redact: Callable[[str], str]
) -> ToolsView | None:
    """The view of a cell's ``--tools`` (None without it); ``UsageError`` for options needing it."""
    if args.tools is None:
        if args.yes or args.max_rounds is not None:
            raise UsageError("%lollms: --yes and --max-rounds go with --tools F,G")
        return None
    if args.each is not None:
        raise UsageError("%lollms: --tools goes with one prompt, not with --each")
    return ToolsView(
        functions(namespace, args.tools), rich=rich, yes=args.yes, max_rounds=args.max_rounds, redact=redact
    )


def _label(run: Any) -> str:
    return call_label(run.call.name, run.call.arguments)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _outcome(run: Any) -> tuple[str, str]:
    """A mark and a word on what became of ``run``, and what it returned or why not."""
    if run.refused is not None:
        return "✗", f"refused: {run.refused}"
    if run.error is not None:
        return "⚠", f"error: {run.error}"
    return "→", run.result if run.result is not None else ""


class ToolsView:
    """What one ``--tools`` cell shows and asks; hand :meth:`ask_options` to ``Session.ask``.

    ``rich``: a notebook front end (displays), else standard output.
    ``yes``: run every call without asking. ``redact``: masks keys in what is shown.
    """

    def __init__(self, tools: list[Callable[..., Any]], *, rich: bool, yes: bool,
                 max_rounds: int | None, redact: Callable[[str], str]) -> None:
        if max_rounds is not None and max_rounds < 0:
            raise UsageError("%lollms: --max-rounds needs a number of rounds, 0 or more")
        self.tools = tools
        self.rich = rich
        self.yes = yes
        self.max_rounds = max_rounds
        self.redact = redact
        self.runs: list[Any] = []
        self.no_input: list[str] = []  # calls refused because nothing could ask the user
        self._handle: Any = None
        self._running: str | None = None

    def ask_options(self) -> dict[str, Any]:
        """The keyword arguments of ``Session.ask`` for this cell's tools."""
        options: dict[str, Any] = {
            "tools": self.tools, "approve": True if self.yes else self.approve, "on_tool": self.on_tool,
        }
        if self.max_rounds is not None:
            options["max_rounds"] = self.max_rounds
        _drain_changed()  # what an earlier cell left unread is not this cell's
        return options

    # -- approval ---------------------------------------------------------------

    def approve(self, call: Any) -> bool:
        """Ask the user before a call of a function not marked safe: ``y`` runs it, anything else refuses."""
        # Whole values: what is approved must be seen, not a shortened label.
        label = self.redact(call_label(call.name, call.arguments, limit=None))
        if self.no_input:
            self.no_input.append(label)
            return False
        try:
            # builtins.input at call time: ipykernel puts its own there while a cell runs.
            answer = builtins.input(f"run {label}? [y/N] ")
        except (StdinNotImplementedError, EOFError, OSError):
            self.no_input.append(label)
            return False
        return answer.strip().lower() in ("y", "yes")

    # -- display ----------------------------------------------------------------

    def on_tool(self, event: Any) -> None:
        """Show a call as it starts and as it ends."""
        run = event.run
        if event.kind == "start":
            self._running = self.redact(_label(run))
        else:
            self._running = None
            self.runs.append(run)
        if self.rich:
            self._show_live()
        elif event.kind == "end":
            mark, outcome = _outcome(run)
            say(self.redact(f"lollms: {_label(run)} {mark} {_cut(outcome, _LIVE_PREVIEW)}"))

    def _live_markdown(self) -> str:
        lines = []
        for run in self.runs:
            mark, outcome = _outcome(run)
            lines.append(f"- `{_label(run)}` {mark} {_md(_cut(outcome, _LIVE_PREVIEW))}")
        if self._running is not None:
            lines.append(f"- `{self._running}` … running")
        return self.redact("\n".join(lines))

    def _show_live(self) -> None:
        from IPython.display import display

        data = {"text/markdown": self._live_markdown(), "text/plain": self._live_markdown()}
        if self._handle is None:
            self._handle = display(data, raw=True, display_id=True)  # type: ignore[no-untyped-call]
        else:
            self._handle.update(data, raw=True)

    def finish(self, response: Any) -> None:
        """Collapse the calls where they ran, and say what stopped a call or changed since recorded."""
        runs = list(getattr(response, "tool_runs", None) or self.runs)
        changed = _drain_changed()
        if self.rich and runs:
            from IPython.display import display

            data = {"text/markdown": self.redact(calls_markdown(runs, changed)),
                    "text/plain": self.redact(calls_text(runs))}
            if self._handle is not None:  # the live list, above the answer, becomes the collapsed one
                self._handle.update(data, raw=True)
            else:
                display(data, raw=True)  # type: ignore[no-untyped-call]
        for line in self._remarks(changed):
            if self.rich:
                from IPython.display import Markdown, display

                display(Markdown(f"**⚠** {_md(line)}"))  # type: ignore[no-untyped-call]
            else:
                say(f"lollms: {line}", file=sys.stderr)

    def _remarks(self, changed: list[str]) -> list[str]:
        lines = [self.redact(f"{label} returned something else than when recorded") for label in changed]
        if self.no_input:
            lines.append(
                f"{', '.join(self.no_input)} not run: nothing here can ask for approval (no input); "
                "run the cell with --yes, or mark the function @tool(safe=True)"
            )
        return lines


def calls_markdown(runs: list[Any], changed: list[str] | None = None) -> str:
    """The calls and their results, collapsed in a ``<details>`` (Markdown with HTML inside)."""
    changed_set = set(changed or ())
    items = []
    for run in runs:
        mark, outcome = _outcome(run)
        label = _label(run)
        note = " <em>(returned something else than when recorded)</em>" if label in changed_set else ""
        items.append(
            f"<li><code>{html.escape(label)}</code> {mark}{note}"
            f"<pre style=\"white-space:pre-wrap\">{html.escape(_cut(outcome, _PREVIEW))}</pre></li>"
        )
    refused = sum(run.refused is not None for run in runs)
    summary = f"Tool calls: {len(runs)}" + (f", refused: {refused}" if refused else "")
    return f"<details class=\"lollms-tools\"><summary>{summary}</summary><ol>{''.join(items)}</ol></details>"


def calls_text(runs: list[Any]) -> str:
    """The calls as plain text, one line each (the output's text/plain)."""
    lines = []
    for run in runs:
        mark, outcome = _outcome(run)
        lines.append(f"{_label(run)} {mark} {_cut(outcome, _LIVE_PREVIEW)}")
    return "\n".join(lines)


def _md(text: str) -> str:
    """Text shown as written inside Markdown."""
    return html.escape(text, quote=False).replace("*", "\\*").replace("_", "\\_").replace("`", "\\`")


def _drain_changed() -> list[str]:
    """The calls whose replayed result differs from the recorded one, since last asked (replay only)."""
    from .. import replay

    tape = replay.active()
    return tape.cassette.changed_results() if tape is not None else []
