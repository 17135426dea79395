"""The items of a mapped prompt, and the results lined up with them again.

:func:`items_of` turns what ``Session.map`` / ``--each`` is given into a
list of values and a label for each: a list (labels are positions), a dict
(its keys), a pandas Series or DataFrame (its index; a row is a
:class:`Record`), a glob of files (their paths; each value is the file's
text, read by the summaries' loader) or any other iterable (positions).
:func:`aligned` builds the output of the same shape from the results.

pandas is never imported here unless the items are already pandas objects
(its module is then loaded, and is reused from ``sys.modules``).
"""

from __future__ import annotations

import glob as globlib
import itertools
import os
import re
import sys
from collections import ChainMap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import DocumentError, InvalidOptionError, PromptError
from .interpolate import fill, lookup

if TYPE_CHECKING:
    from .keys import KeyStore

__all__ = [
    "MAX_FILES", "MAX_ITEMS", "FileText", "Items", "Record",
    "aligned", "column", "filled_prompts", "items_of", "pandas_kind",
]

MAX_ITEMS = 1_000_000
"""Items one mapped prompt takes (an endless generator stops here, with a clear error)."""
MAX_FILES = 10_000
"""Files a glob given as items may match."""
_GLOB_CHARS = "*?["


class Record(dict[Any, Any]):
    """A dict whose keys are also attributes, so ``{item.name}`` and ``{item["name"]}`` both work.

    A DataFrame's rows and the dicts of a list of dicts are given to the
    template as records; ``str()`` is the dict's own.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class FileText(str):
    """A file's text, which also knows the file: ``{item}`` is the text, ``{item.name}`` the file name."""

    path: str
    name: str

    def __new__(cls, text: str, path: str) -> FileText:
        self = super().__new__(cls, text)
        self.path = path
        self.name = os.path.basename(path)
        return self


@dataclass
class Items:
    """The values a template is filled with, their labels, and what they came as.

    ``kind`` is ``"list"``, ``"dict"``, ``"files"``, ``"series"`` or ``"frame"``;
    ``source`` is the pandas object given, kept to line the output up with its index.
    """

    values: list[Any]
    labels: list[Any]
    kind: str
    source: Any = None

    def __len__(self) -> int:
        return len(self.values)


def pandas_kind(obj: Any) -> str | None:
    """``"frame"`` or ``"series"`` for a pandas DataFrame or Series (checked without importing pandas)."""
    cls = type(obj)
    if not cls.__module__.startswith("pandas"):
        return None
    return {"DataFrame": "frame", "Series": "series"}.get(cls.__name__)


def items_of(items: Any) -> Items:
    """Read ``items`` (see the module's docstring); InvalidOptionError or DocumentError in one line."""
    kind = pandas_kind(items)
    if kind == "frame":
        rows = [Record(row) for row in items.to_dict("records")]  # Python scalars, not numpy's
        return Items(rows, list(items.index), kind, items)
    if kind == "series":
        return Items(list(items.tolist()), list(items.index), kind, items)
    if isinstance(items, (str, Path)):
        return _files(str(items))
    if isinstance(items, Mapping):
        return Items([_record(v) for v in items.values()], list(items.keys()), "dict")
    if isinstance(items, (bytes, bytearray)) or not isinstance(items, Iterable):
        raise InvalidOptionError(
            f"the items to map must be a list, a dict, a pandas Series or DataFrame, a glob of files "
            f"or another iterable, not {type(items).__name__}"
        )
    values = list(itertools.islice(iter(items), MAX_ITEMS + 1))
    if len(values) > MAX_ITEMS:
        raise InvalidOptionError(
            f"more than {MAX_ITEMS:,} items to map (lollms_magics.core.map_items.MAX_ITEMS); "
            "map a part of them, or raise that limit"
        )
    return Items([_record(v) for v in values], list(range(len(values))), "list")


def _record(value: Any) -> Any:
    # A plain dict gains attribute access; other mappings and values are left as they are.
    return Record(value) if type(value) is dict else value


def _files(pattern: str) -> Items:
    """The files ``pattern`` (a glob, a folder's glob or one path) names, each as its text."""
    from ..summaries.sources import load_source

    expanded = os.path.expanduser(pattern)
    if any(c in expanded for c in _GLOB_CHARS) and not os.path.exists(expanded):
        found = (m for m in globlib.iglob(expanded, recursive=True) if os.path.isfile(m))
        paths = list(itertools.islice(found, MAX_FILES + 1))
    elif os.path.isfile(expanded):
        paths = [expanded]
    else:
        raise DocumentError(
            f"{pattern} is no file and no glob (a string given as items names files: 'reviews/*.txt'; "
            "a text to map over goes in a list)"
        )
    if len(paths) > MAX_FILES:
        raise DocumentError(
            f"{pattern} matches more than {MAX_FILES:,} files (lollms_magics.core.map_items.MAX_FILES); "
            "choose fewer with a narrower glob, or raise that limit"
        )
    if not paths:
        raise DocumentError(f"no file matches {pattern}")
    paths.sort()
    # The summaries' loader: the same bounds, encodings and converters as %lollms summarize.
    texts = [FileText(load_source(Path(p)).text, p) for p in paths]
    return Items(texts, paths, "files")


def _pandas() -> Any:
    return sys.modules["pandas"]  # loaded: the items were pandas objects


def aligned(items: Items, results: list[Any], errors: list[str | None], fields: list[str]) -> Any:
    """The results in the items' shape: a list, a dict, or pandas lined up with the items' index.

    A Series gives a Series (``fields``, the schema's, make it a DataFrame);
    a DataFrame gives a DataFrame with a ``result`` column (or one per field)
    and an ``error`` column. Missing results are None.
    """
    if items.kind in ("dict", "files"):
        return dict(zip(items.labels, results, strict=True))
    if items.kind == "list":
        return list(results)
    pd = _pandas()
    index = items.source.index
    if items.kind == "series" and not fields:
        return pd.Series(results, index=index, name="result", dtype=object)
    columns = {name: column(results, name) for name in fields} if fields else {"result": results}
    frame = pd.DataFrame(columns, index=index)
    frame["error"] = list(errors)  # by position: an index may repeat a label
    return frame


def column(results: list[Any], field: str) -> list[Any]:
    """One field of structured results (None where a result is missing or lacks it)."""
    return [r.get(field) if isinstance(r, Mapping) else None for r in results]


# A reference to the item in a template: {item}, {item.field}, {item["col"]}, {item[0]}.
_ITEM_REF = re.compile(r"(?<!\{)\{(item(?:\.[A-Za-z_]\w*|\[(?:-?\d+|'[^'\]]*'|\"[^\"\]]*\")\])*)\}(?!\})")


class _Filler(Protocol):
    """What filling the prompts needs of the session: its keys and the filler's limit."""

    keys: KeyStore
    fill_limit: int


def filled_prompts(
    session: _Filler, template: str, items: Items, namespace: Mapping[str, Any] | None,
    notes: list[str], what: str,
) -> list[str]:
    """``template`` filled for every item by the prompts' filler, ``item`` over ``namespace``.

    Refused (PromptError) before anything is sent: a template naming no item,
    a reference to ``item`` that some item cannot fill (naming it), and a
    filled prompt holding an API key (naming the reference and the item).
    """
    if what == "the template" and not _ITEM_REF.search(template):
        raise PromptError(
            "the template names no {item}, so every prompt would be the same; write {item}, "
            '{item.field} or {item["column"]} where each item goes'
        )
    session.keys.refuse(template, what)
    refs = _ITEM_REF.findall(template)
    layer: dict[str, Any] = {}
    names = namespace if isinstance(namespace, dict) else dict(namespace or {})  # the user's, not copied
    scope = ChainMap(layer, names)
    texts: list[str] = []
    for value, label in zip(items.values, items.labels, strict=True):
        layer["item"] = value
        for ref in refs:
            try:
                lookup(ref, scope)
            except LookupError:
                raise PromptError(
                    f"{{{ref}}} names nothing in item {label!r}; check the field's name "
                    "(use {{item}} for a literal brace)"
                ) from None
        filled = fill(template, scope, limit=session.fill_limit)
        if filled.notes and len(notes) < 5:
            notes.extend(f"item {label!r}: {note}" for note in filled.notes)
        texts.append(filled.text)
    holding = session.keys.first_holding_secret(texts)
    if holding is not None:
        layer["item"] = items.values[holding]
        reference = session.keys.reference_holding_key(template, scope)
        where = f"{reference} of item" if reference else f"{what} filled for item"
        session.keys.refuse(texts[holding], f"{where} {items.labels[holding]!r}")
    return texts
