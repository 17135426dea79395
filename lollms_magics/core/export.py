"""The conversation written to a file: Markdown, JSON or a notebook, by the file's extension.

Every text goes through the session's key masking first; pictures are
counted, not written (their base64 would swamp the file). The notebook
holds one ``%%lollms`` cell per prompt, its answer as the Markdown output
the magic shows, so it opens as if the conversation had been run there.
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


def _records(exchanges: Sequence[Exchange], redact: Callable[[str], str]) -> list[dict[str, Any]]:
    return [
        {
            "prompt": redact(x.prompt), "answer": redact(x.answer), "backend": x.backend,
            "images": len(x.images),
        }
        for x in exchanges
    ]


def _markdown(records: list[dict[str, Any]]) -> str:
    parts = ["# Conversation\n"]
    for number, r in enumerate(records, 1):
        images = f"\n\n*({r['images']} image(s) sent, not written here)*" if r["images"] else ""
        parts.append(f"## {number}. You\n\n{r['prompt']}{images}\n")
        parts.append(f"### {r['backend'] or 'model'}\n\n{r['answer']}\n")
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
        cells.append({
            "cell_type": "code", "execution_count": number, "id": f"exchange-{number}", "metadata": {},
            "source": f"%%lollms{binding}\n{r['prompt']}", "outputs": [output],
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
