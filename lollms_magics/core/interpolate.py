"""Fill ``{name}`` references in a prompt from the user's namespace.

Only a brace pair that names an existing variable is replaced:

* ``{name}``, ``{name.attr}``, ``{name[0]}``, ``{name["key"]}`` and chains of
  them are looked up (attributes and items only, nothing is evaluated);
* anything else in braces (code, JSON, LaTeX, a name that is not defined)
  is left exactly as written, so a prompt never fails on its braces;
* braces that open a LaTeX argument (``\\mathbf{x}``, ``x^{n}``, ``a_{i}``)
  are left alone even when a variable of that name exists, but a word before
  the underscore (``data_{date}.csv``) is a file name, and is filled;
* a reference to something callable (``{df.head}``) is refused: its repr is
  not what the user meant to send, and nothing is ever called;
* a value longer than ``limit`` characters (a DataFrame, a long list) is cut,
  with a note in the prompt saying how much was left out.
* ``{{name}}`` is the escape: it becomes the literal text ``{name}``. Other
  doubled braces (``}}`` closing nested JSON, say) are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import PromptError

__all__ = ["Filled", "fill", "lookup"]

_REF = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[(?:-?\d+|'[^'\]]*'|\"[^\"\]]*\")\])*"
_PATTERN = re.compile(r"\{\{(?P<escaped>" + _REF + r")\}\}|\{(?P<ref>" + _REF + r")\}")
_WHOLE_REF = re.compile(_REF)
_STEP = re.compile(r"\.(?P<attr>\w+)|\[(?P<item>[^\]]*)\]")
# A LaTeX command, or a sub/superscript mark after a one-character base
# (``x_``, ``2^``, ``}_``), directly before the brace.
_LATEX_BEFORE = re.compile(r"(?:\\[A-Za-z]+[\^_]?|(?:^|[^\w])\w[\^_]|[})\]][\^_]|\^)$")
_MISSING = object()


def lookup(ref: str, namespace: Mapping[str, Any]) -> Any:
    """The value ``ref`` (``name``, ``name.attr``, ``name[0]``...) names, or raise ``LookupError``."""
    if not _WHOLE_REF.fullmatch(ref):
        raise LookupError(ref)
    name = re.match(r"\w+", ref)
    assert name is not None  # a whole reference starts with its name
    value = namespace.get(name.group(), _MISSING)
    if value is _MISSING:
        raise LookupError(name.group())
    for step in _STEP.finditer(ref, name.end()):
        if step.group("attr") is not None:
            try:
                value = getattr(value, step.group("attr"))
            except AttributeError:
                raise LookupError(ref) from None
            continue
        item = step.group("item")
        key: Any = item[1:-1] if item[:1] in "'\"" else int(item)
        try:
            value = value[key]
        except (LookupError, TypeError):
            raise LookupError(ref) from None
    return value


@dataclass
class Filled:
    """A prompt with its references filled, and notes on what was cut."""

    text: str
    notes: list[str] = field(default_factory=list)


DEFAULT_LIMIT = 8000  # characters one value may bring into a prompt


def _refuse_callable(ref: str, value: Any) -> None:
    if callable(value) and not isinstance(value, type):
        raise PromptError(
            f"{{{ref}}} names a function or method, whose text is not its result; "
            f"compute it first (x = {ref}(...)) and write {{x}}, or use {{{{{ref}}}}} for literal braces"
        )


def fill(text: str, namespace: Mapping[str, Any], *, limit: int = DEFAULT_LIMIT) -> Filled:
    """``text`` with each ``{reference}`` to an existing variable replaced by its ``str()``.

    Raises :class:`~lollms_magics.errors.PromptError` for a reference to a
    callable. A value longer than ``limit`` characters is cut to ``limit``
    with a note, in the prompt and in the result's ``notes``.
    """
    if "{" not in text:
        return Filled(text)
    notes: list[str] = []

    def replace(match: re.Match[str]) -> str:
        escaped = match.group("escaped")
        if escaped is not None:
            return "{" + escaped + "}"
        if _LATEX_BEFORE.search(text, max(0, match.start() - 32), match.start()):
            return match.group()
        ref = match.group("ref")
        try:
            value = lookup(ref, namespace)
        except LookupError:
            return match.group()
        _refuse_callable(ref, value)
        shown = str(value)
        if len(shown) > limit:
            notes.append(
                f"{{{ref}}} was cut to {limit:,} of its {len(shown):,} characters "
                "(raise the limit with %config LollmsMagics.fill_limit, or send a smaller part)"
            )
            shown = shown[:limit] + f"\n[... {len(shown) - limit:,} more characters not sent]"
        return shown

    return Filled(_PATTERN.sub(replace, text), notes)
