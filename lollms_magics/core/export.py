"""The conversation written to a file: Markdown, JSON or a notebook, by the file's extension.

Every text goes through the session's key masking first; pictures are
counted, not written (their base64 would swamp the file). The notebook
holds one ``%%lollms`` cell per prompt, its answer as the Markdown output
the magic shows, so it opens as if the conversation had been run there.
An exchange made with tools lists its calls and what they returned before
its answer, one line each (results cut to :data:`SHOWN` characters).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InvalidOptionError
from .history import Exchange

__all__ = ["FORMATS", "export_conversation"]

FORMATS = {".md": "markdown", ".markdown": "markdown", ".json": "json", ".ipynb": "notebook"}
SHOWN = 200  # characters of a tool's result written in the Markdown and notebook forms (JSON keeps all)


def _short(text: str, limit: int = SHOWN) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _calls_markdown(calls: list[dict[str, str]]) -> str:
    return "\n".join(f"- `{c['call']}` → {_short(c['result'])}" for c in calls)


def _records(exchanges: Sequence[Exchange], redact: Callable[[str], str]) -> list[dict[str, Any]]:
    return [
        {
            "prompt": redact(x.prompt), "answer": redact(x.answer), "backend": x.backend,
            "images": len(x.images),
            **({"tools": [{"call": redact(label), "result": redact(result)} for label, result in x.calls()]}
               if x.steps else {}),
        }
        for x in exchanges
    ]


def _markdown(records: list[dict[str, Any]]) -> str:
    parts = ["# Conversation\n"]
    for number, r in enumerate(records, 1):
        images = f"\n\n*({r['images']} image(s) sent, not written here)*" if r["images"] else ""
        parts.append(f"## {number}. You\n\n{r['prompt']}{images}\n")
        calls = f"*Tool calls:*\n\n{_calls_markdown(r['tools'])}\n\n" if r.get("tools") else ""
        parts.append(f"### {r['backend'] or 'model'}\n\n{calls}{r['answer']}\n")
    return "\n".join(parts)


def _notebook(records: list[dict[str, Any]]) -> dict[str, Any]:
    cells: list[dict[str, Any]] = []
    for number, r in enumerate(records, 1):
        binding = f" -b {r['backend']}" if r["backend"] else ""
        output = {
            "output_type": "display_data",
            "data": {"text/markdown": r["answer"], "text/plain": r["answer"]},
            "metadata": {"lollms_magics": {"backend": r["backend"], "images": r["images"]}},
        }
        outputs = [output]
        if r.get("tools"):  # the calls before the answer, as the cell showed them
            calls = _calls_markdown(r["tools"])
            outputs.insert(0, {"output_type": "display_data", "metadata": {},
                               "data": {"text/markdown": calls, "text/plain": calls}})
        cells.append({
            "cell_type": "code", "execution_count": number, "id": f"exchange-{number}", "metadata": {},
            "source": f"%%lollms{binding}\n{r['prompt']}", "outputs": outputs,
        })
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def export_conversation(exchanges: Sequence[Exchange], path: str, redact: Callable[[str], str]) -> str:
    """Write ``exchanges`` to ``path`` (.md, .json or .ipynb); returns the format written.

    :class:`InvalidOptionError` for another extension.
    """
    extension = os.path.splitext(path)[1].lower()
    kind = FORMATS.get(extension)
    if kind is None:
        raise InvalidOptionError(
            f"cannot export to {extension or 'a file without extension'}: use .md, .json or .ipynb"
        )
    records = _records(exchanges, redact)
    if kind == "markdown":
        text = _markdown(records)
    elif kind == "json":
        text = json.dumps({"exchanges": records}, indent=2, ensure_ascii=False) + "\n"
    else:
        text = json.dumps(_notebook(records), indent=1, ensure_ascii=False) + "\n"
    with open(os.path.expanduser(path), "w", encoding="utf-8") as file:
        file.write(text)
    return kind
