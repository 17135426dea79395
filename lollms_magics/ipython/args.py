"""The ``%lollms`` command line: its options, and where the prompt starts.

Options come first; in the line form the prompt is the rest of the line,
taken verbatim (quotes, braces and apostrophes untouched), so ``%lollms
What's {x}?`` needs no quoting. ``--`` ends the options explicitly.
"""

from __future__ import annotations

import argparse
import re
import shlex
from typing import Any, NoReturn

from IPython.core.error import UsageError

from .display import FORMATS

__all__ = ["FLAGS", "PROMPT_PARSER", "Parser", "parse_prompt", "split_options"]

_SPACE = re.compile(r"\s*")
_WORD = re.compile(r"""(?:[^\s"']+|"(?:\\.|[^"\\])*"|'[^']*')+""")


class Parser(argparse.ArgumentParser):
    """An argument parser that raises ``UsageError`` instead of exiting."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog=prog, add_help=False, allow_abbrev=False)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _prompt_parser() -> Parser:
    p = Parser("%lollms")
    add = p.add_argument
    add("-b", "--binding", help="binding to use, BINDING or BINDING:MODEL (see %%lollms bindings)")
    add("-m", "--model", help="model name")
    add("--host", help="server URL")
    add("-n", "--n-predict", type=int, metavar="N", help="maximum tokens to generate")
    add("-t", "--temperature", type=float, metavar="T", help="sampling temperature")
    add("--top-k", type=int, metavar="K", help="sample from the K likeliest tokens")
    add("--top-p", type=float, metavar="P", help="nucleus sampling mass")
    add("--seed", type=int, help="random seed")
    add("--repeat-penalty", type=float, metavar="R", help="penalty for repeated tokens")
    add("--ctx-size", type=int, metavar="N",
        help="context window in tokens (Ollama's num_ctx; reloads the embedded model)")
    add("--stop", action="append", metavar="TEXT", help="a string that ends the answer (repeatable)")
    add("--timeout", type=float, metavar="S", help="seconds the server may stay silent")
    add("--fallback-to", metavar="B[:M],...",
        help="backends that answer, in order, when the chosen one fails before its first text (refused, "
             "timeout, 429, 5xx, quota); for this cell, over %%config LollmsMagics.fallbacks")
    add("-s", "--system", help="system prompt")
    add("-i", "--image", action="append", metavar="IMG",
        help="image path, or a variable holding a path, bytes or a PIL image (repeatable)")
    add("-f", "--format", choices=FORMATS, help="how to show the answer (default markdown)")
    add("-o", "--out", metavar="VAR", help="store the answer's text (its data with --schema) in VAR")
    add("--schema", metavar="SCHEMA",
        help="answer as data following SCHEMA: a variable holding a JSON Schema, a dataclass, a TypedDict "
             "or a pydantic model, or a quoted short form \"name: str, year: int?, tags: list[str], "
             "mood: happy|sad\" ([...] around it: a list of them)")
    add("--no-stream", action="store_true", help="show the answer only once complete")
    add("--new", action="store_true", help="start a new conversation")
    add("--raw", action="store_true", help="send {braces} as written, without filling variables")
    add("--each", metavar="ITEMS",
        help="ask the cell once per item of ITEMS, a variable (list, dict, pandas Series or DataFrame, any "
             "iterable) or a glob of files, each filling {item}, {item.field}, {item[\"col\"]}; -o VAR, "
             "-o df[\"col\"] or -o df[[\"a\",\"b\"]] gets the results lined up with the items")
    add("--concurrency", type=int, metavar="N", help="with --each: requests at once per host (default 1)")
    add("--hosts", metavar="URL,URL", help="with --each: servers of the same binding sharing the items")
    add("--fail-fast", action="store_true", help="with --each: stop at the first item that fails")
    add("--context", type=int, metavar="N",
        help="send the last N executed code cells (their code, and their value as text) before the prompt, "
             "cut to fit (default: %%config LollmsMagics.context_cells, 0); a kernel sees executed code and "
             "its values, not Markdown cells, printed output or the order of cells on screen")
    add("--docs", metavar="SOURCE",
        help="answer from documents: a file, folder, glob, URL or variable (as summarize takes); the "
             "passages matching the question are sent, cited in the answer and listed under it")
    add("--tools", metavar="F,G",
        help="let the model call these functions of the notebook (described from their signatures and "
             "docstrings); each call is shown, and asked for approval unless the function is marked "
             "@tool(safe=True)")
    add("--yes", action="store_true", help="with --tools: run every call of this cell without asking")
    add("--max-rounds", type=int, metavar="N", help="with --tools: rounds of calls at most (default 4)")
    add("--debug", action="store_true", help="show the traceback of errors")
    p.epilog = (
        "--schema's short form: fields NAME: TYPE separated by commas (quote a NAME with spaces); TYPE is "
        "str, int, float, bool, list[TYPE], {NAME: TYPE, ...} for an object, or values such as "
        "positive|negative|neutral; TYPE? lets the value be null; [fields] asks for a list of objects. "
        "With --schema the answer is checked (and asked for again once if it does not fit), shown as a "
        "table or as JSON, and -o VAR holds its data."
    )
    return p


PROMPT_PARSER = _prompt_parser()
FLAGS = frozenset({"--no-stream", "--new", "--raw", "--debug", "--fail-fast", "--yes"})


def split_options(line: str) -> tuple[list[str], str]:
    """Split ``line`` into its leading option words (unquoted) and the verbatim rest.

    The rest starts at the first word that is neither an option nor an
    option's value.
    """
    argv: list[str] = []
    pos, expecting_value = 0, False
    while True:
        pos = _SPACE.match(line, pos).end()  # type: ignore[union-attr]  # always matches
        if pos == len(line):
            return argv, ""
        if not expecting_value and line[pos] != "-":
            return argv, line[pos:]
        word_match = _WORD.match(line, pos)
        if word_match is None:
            raise UsageError(f"%lollms: unbalanced quote in {line[pos:]!r}")
        pos = word_match.end()
        word = "".join(shlex.split(word_match.group()))
        if not expecting_value and word == "--":
            return argv, line[pos:].lstrip()
        argv.append(word)
        if expecting_value:
            expecting_value = False
        else:  # a value may follow, unless attached ("-t0.2", "--seed=3") or a flag
            expecting_value = word not in FLAGS and "=" not in word and (
                word.startswith("--") or len(word) == 2
            )


def parse_prompt(line: str, cell: str | None) -> tuple[Any, str]:
    """The parsed options and the prompt of a ``%lollms`` line or ``%%lollms`` cell."""
    argv, rest = split_options(line)
    if cell is not None and rest.strip():
        raise UsageError(f"%%lollms: unexpected {rest.strip()!r}; the prompt goes in the cell")
    return PROMPT_PARSER.parse_args(argv), rest if cell is None else cell
