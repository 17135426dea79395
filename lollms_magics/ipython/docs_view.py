"""``%%lollms --docs SOURCE``: the source named on the line, and the passages shown under the answer.

The question and the ranking are the Session's (:mod:`lollms_magics.core.docs`);
this module reads SOURCE as ``%lollms summarize`` does (a variable first,
else a path, glob or URL) and lists the passages sent, collapsed in an HTML
``<details>``, the cited ones marked; a terminal gets one line of labels.
"""

from __future__ import annotations

import html
import sys
from typing import Any

from ..core.docs import Passage, cited
from ..core.interpolate import lookup
from .plain import say

__all__ = ["passages_html", "show_passages", "source_of"]

_PREVIEW = 1200  # characters of a passage shown; the label says where the rest is


def source_of(user_ns: dict[str, Any], ref: str) -> Any:
    """What ``--docs REF`` names: a variable's value, else REF itself (a path, a glob or a URL)."""
    try:
        return lookup(ref, user_ns)
    except LookupError:
        return ref


def passages_html(passages: list[Passage], answer: str) -> str:
    """The passages sent, in a collapsed ``<details>``, those the answer cites first and marked."""
    quoted = set(cited(answer, passages))
    ordered = [p for p in passages if p.label in quoted] + [p for p in passages if p.label not in quoted]
    items = []
    for p in ordered:
        text = p.text if len(p.text) <= _PREVIEW else p.text[:_PREVIEW] + " …"
        mark = " <em>(cited)</em>" if p.label in quoted else ""
        items.append(
            f"<li><strong>[{html.escape(p.label)}]</strong>{mark}"
            f"<blockquote style=\"white-space:pre-wrap\">{html.escape(text)}</blockquote></li>"
        )
    summary = f"Passages sent: {len(passages)}, cited: {len(quoted)}"
    body = "".join(items)
    return f"<details class=\"lollms-passages\"><summary>{summary}</summary><ol>{body}</ol></details>"


def show_passages(response: Any, answer: str, rich: bool, redact: Any) -> None:
    """Show the passages ``response`` was sent with, under its answer (nothing when it had none)."""
    passages: list[Passage] | None = getattr(response, "passages", None)
    if passages is None:
        return
    if not passages:
        say("lollms: no passage of the documents shares a word with the question", file=sys.stderr)
        return
    if rich:
        from IPython.display import HTML, display

        display(HTML(redact(passages_html(passages, answer))))  # type: ignore[no-untyped-call]
        return
    quoted = set(cited(answer, passages))
    labels = ", ".join(f"[{p.label}]{'*' if p.label in quoted else ''}" for p in passages)
    say(redact(f"passages sent ({len(passages)}; * cited): {labels}"))
