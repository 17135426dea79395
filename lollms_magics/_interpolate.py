"""Fill ``{name}`` references in a prompt from the user's namespace.

Only a brace pair that names an existing variable is replaced:

* ``{name}``, ``{name.attr}``, ``{name[0]}``, ``{name["key"]}`` and chains of
  them are looked up (attributes and items only, nothing is evaluated);
* anything else in braces (code, JSON, LaTeX, a name that is not defined)
  is left exactly as written, so a prompt never fails on its braces;
* braces that open a LaTeX argument (``\\mathbf{x}``, ``x^{n}``, ``a_{i}``)
  are left alone even when a variable of that name exists;
* ``{{name}}`` is the escape: it becomes the literal text ``{name}``. Other
  doubled braces (``}}`` closing nested JSON, say) are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["fill", "lookup"]

_REF = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[(?:-?\d+|'[^'\]]*'|\"[^\"\]]*\")\])*"
_PATTERN = re.compile(r"\{\{(?P<escaped>" + _REF + r")\}\}|\{(?P<ref>" + _REF + r")\}")
_WHOLE_REF = re.compile(_REF)
_STEP = re.compile(r"\.(?P<attr>\w+)|\[(?P<item>[^\]]*)\]")
_LATEX_BEFORE = re.compile(r"(?:\\[A-Za-z]+|[\^_])$")
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


def fill(text: str, namespace: Mapping[str, Any]) -> str:
    """``text`` with each ``{reference}`` to an existing variable replaced by its ``str()``."""
    if "{" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        escaped = match.group("escaped")
        if escaped is not None:
            return "{" + escaped + "}"
        if _LATEX_BEFORE.search(text, max(0, match.start() - 32), match.start()):
            return match.group()
        try:
            return str(lookup(match.group("ref"), namespace))
        except LookupError:
            return match.group()

    return _PATTERN.sub(replace, text)
