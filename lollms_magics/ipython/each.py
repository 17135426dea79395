"""``%%lollms --each ITEMS``: the cell as a template, asked once per item.

::

    %%lollms --each reviews -o reviews["label"] --concurrency 8
    Is this review positive or negative? Answer with one word.
    {item.text}

ITEMS is a variable (a list, a dict, a pandas Series or DataFrame, any
iterable; ``name.attr`` and ``name[0]`` work) or else a glob of files. The
work is :meth:`~lollms_magics.core.session.Session.map`; this module reads
the line, draws the progress bar and puts the results where ``-o`` says:

* ``-o VAR``: the results lined up with the items (a list, a dict, a Series
  or a DataFrame with ``error`` column; see :meth:`MapResult.output`);
* ``-o df["label"]``: one column of ``df`` (with ``--schema``, the field of
  that name, or the only field);
* ``-o df[["name","year"]]``: several columns, each a field of ``--schema``.

Without ``-o`` the cell's value is the :class:`~lollms_magics.core.mapping.MapResult`.
An interrupt keeps what was done in ``-o`` and a re-run sends only what is
missing or failed; failed items fail the cell after the others are stored.
"""

from __future__ import annotations

import contextlib
import keyword
import re
import sys
from collections.abc import Iterator, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..core.interpolate import lookup
from ..core.map_items import aligned, column, pandas_kind
from ..errors import DocumentError
from .failure import CellFailure
from .plain import PlainLine, replaying, say

if TYPE_CHECKING:
    from ..core.mapping import MapProgress, MapResult
    from .magics import LollmsMagics

__all__ = ["Out", "each_command", "parse_out"]

_OUT = re.compile(r"^(?P<name>[A-Za-z_]\w*)(?:\[(?P<key>.+)\])?$", re.DOTALL)
_SHOWN_ERRORS = 5
_UNSET = object()


@dataclass(frozen=True)
class Out:
    """Where ``-o`` puts the results: a variable, or columns (keys) of the variable's value."""

    name: str
    columns: tuple[str, ...] = ()
    many: bool = False  # written df[["a"]]: a list of columns, even of one


def parse_out(text: str) -> Out:
    """Read ``-o VAR``, ``-o VAR["col"]`` or ``-o VAR[["a","b"]]`` (quotes optional), else UsageError."""
    match = _OUT.match(text.strip())
    if match is None or keyword.iskeyword(match.group("name")):
        raise UsageError(f'%lollms: -o needs a variable name or VAR["column"], not {text!r}')
    key = match.group("key")
    if key is None:
        return Out(match.group("name"))
    key = key.strip()
    many = key.startswith("[") and key.endswith("]")
    names = [_unquoted(part) for part in key[1:-1].split(",")] if many else [_unquoted(key)]
    if not all(names):
        raise UsageError(f"%lollms: -o {text}: a column name is empty")
    return Out(match.group("name"), tuple(names), many)


def _unquoted(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def each_command(magics: LollmsMagics, args: Any, template: str) -> Any:
    """Run a ``--each`` cell; its value is the MapResult when there is no ``-o``."""
    items = _items(magics, args.each)
    out = parse_out(args.out) if args.out else None
    schema = magics._schema(args.schema) if getattr(args, "schema", None) else None
    if out is not None and out.columns:
        _check_columns(magics, out, schema, items)
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError("%lollms: --concurrency needs a whole number of at least 1")
    if args.image:
        raise UsageError("%lollms: --each sends no image; leave -i out")
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()] if args.hosts else None
    options = {
        "n_predict": args.n_predict, "temperature": args.temperature, "top_k": args.top_k,
        "top_p": args.top_p, "seed": args.seed, "repeat_penalty": args.repeat_penalty,
        "ctx_size": args.ctx_size, "stop": args.stop,
    }
    bar = (_ReplayedBar() if replaying() else _WidgetBar()) if magics._rich() else _TextBar()
    with _cell_timeout(magics, args.timeout):
        try:
            result = magics.session.map(
                template, items, binding=args.binding, model=args.model, host=args.host, hosts=hosts,
                system=args.system, schema=schema, concurrency=args.concurrency or 1,
                fail_fast=args.fail_fast, progress=bar, namespace=None if args.raw else magics.ip.user_ns,
                **{k: v for k, v in options.items() if v is not None},
            )
        except DocumentError as exc:  # a glob that matches nothing, an unreadable file
            raise UsageError(f"%lollms: --each {args.each}: {exc}") from None
    if out is not None:
        _store(magics, out, result)
    _report(magics, result, args.out)
    return None if out is not None else result


def _items(magics: LollmsMagics, ref: str) -> Any:
    try:
        return lookup(ref, magics.ip.user_ns)
    except LookupError:
        pass
    if ref.isidentifier():
        raise UsageError(f"%lollms: --each {ref}: no variable of that name (nor a file)")
    return ref  # a glob or a path: Session.map reads the files


def _check_columns(magics: LollmsMagics, out: Out, schema: Any, items: Any) -> None:
    """Refuse, before anything is sent, an ``-o`` whose columns cannot be written."""
    if out.name not in magics.ip.user_ns:
        raise UsageError(f"%lollms: -o {out.name}[...]: no variable {out.name} to write columns into")
    container = magics.ip.user_ns[out.name]
    frame = pandas_kind(container) == "frame"
    if not frame and not isinstance(container, dict):
        raise UsageError(f"%lollms: -o {out.name}[...] writes columns of a DataFrame (or keys of a dict)")
    if frame and container is not items and pandas_kind(items) is None:
        # Lined up by position: the frame must have a row per item.
        size = len(items) if isinstance(items, Sized) and not isinstance(items, str) else None
        if size is not None and size != len(container):
            raise UsageError(
                f"%lollms: -o {out.name}[...]: {out.name} has {len(container)} rows for {size} items"
            )
    if len(out.columns) > 1 or out.many:
        if not frame:
            raise UsageError(f"%lollms: -o {out.name}[[...]] writes columns of a DataFrame")
        if schema is None:
            raise UsageError("%lollms: several -o columns need --schema with fields of those names")
        from ..core.structured import as_schema

        fields = as_schema(schema).fields
        unknown = [c for c in out.columns if c not in fields]
        if unknown:
            raise UsageError(
                f"%lollms: -o column {unknown[0]!r} is no field of the schema ({', '.join(fields) or 'none'})"
            )


def _store(magics: LollmsMagics, out: Out, result: MapResult) -> None:
    """Put the results where ``out`` says (what was done, when the run ended early)."""
    ns = magics.ip.user_ns
    if not out.columns:
        ns[out.name] = result.output()
        return
    container = ns[out.name]
    frame = pandas_kind(container) == "frame"
    for name in out.columns:
        values = _values_for(result, name, len(out.columns) == 1 and not out.many)
        container[name] = (
            _lined_up(container, result, values) if frame
            else aligned(result.items, values, result.error_list, [])
        )
    if frame and (result.failed or "error" in container.columns):
        container["error"] = _lined_up(container, result, list(result.error_list))


def _values_for(result: MapResult, name: str, single: bool) -> list[Any]:
    """The results for column ``name``: the text, or the schema's field (the only one, for one column)."""
    if not result.fields:
        return list(result.results)
    if name in result.fields:
        return column(result.results, name)
    if single and len(result.fields) == 1:
        return column(result.results, result.fields[0])
    return list(result.results)  # whole records


def _lined_up(frame: Any, result: MapResult, values: list[Any]) -> Any:
    """``values`` as a column of ``frame``: by index label when the items were pandas, else by position."""
    source = result.items.source
    if source is None or frame is source:
        return values
    return sys.modules["pandas"].Series(values, index=source.index)


@contextlib.contextmanager
def _cell_timeout(magics: LollmsMagics, timeout: float | None) -> Iterator[None]:
    """``--timeout`` for this cell only, as for a single prompt."""
    config = magics.session.binding_config
    kept = config.get("read_timeout", _UNSET)
    if timeout is not None:
        if timeout <= 0:
            raise UsageError("%lollms: --timeout needs a positive number of seconds")
        config["read_timeout"] = timeout
    try:
        yield
    finally:
        if timeout is not None:
            if kept is _UNSET:
                config.pop("read_timeout", None)
            else:
                config["read_timeout"] = kept


def _report(magics: LollmsMagics, result: MapResult, out: str | None) -> None:
    """Say how it went; an interrupt is raised again, failures fail the cell (after storing)."""
    redact = magics.session.keys.redact
    for note in result.notes:
        say(f"lollms: {redact(note)}", file=sys.stderr)
    failures = list(result.errors.items())
    for label, message in failures[:_SHOWN_ERRORS]:
        say(f"lollms: item {label!r} failed: {message}", file=sys.stderr)
    if len(failures) > _SHOWN_ERRORS:
        say(f"lollms: ... and {len(failures) - _SHOWN_ERRORS} more (see the error column or .errors)",
              file=sys.stderr)
    kept = f"; the results are in {out}" if out else "; give -o VAR to keep the results"
    again = "run the cell again to send only what is missing or failed"
    total = len(result)
    if result.stopped:
        say(f"lollms: interrupted; {result.done} of {total} done{kept}; {again}", file=sys.stderr)
        raise KeyboardInterrupt
    if result.error is not None:
        raise CellFailure(f"{result.error}; {result.done} of {total} done{kept}; {again}")
    if failures:
        label, message = failures[0]
        raise CellFailure(
            f"{len(failures)} of {total} items failed (item {label!r}: {message}){kept}; {again}"
        )


class _WidgetBar:
    """An ipywidgets bar and its line, made on the first event (ipywidgets is loaded then)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.label: Any = None

    def __call__(self, event: MapProgress) -> None:
        if self.bar is None:
            import ipywidgets
            from IPython.display import display

            self.bar = ipywidgets.IntProgress(min=0, max=max(1, event.total), description="items")
            self.label = ipywidgets.Label()
            display(ipywidgets.HBox([self.bar, self.label]))  # type: ignore[no-untyped-call]
        self.bar.value = event.done + event.failed
        self.label.value = event.line()
        if event.phase in ("done", "stopped"):
            self.bar.bar_style = "success" if event.phase == "done" and not event.failed else "warning"


class _ReplayedBar:
    """While a file is replayed: a plain line (no widget), whose last state holds no time or rate."""

    def __init__(self) -> None:
        self.line = PlainLine()

    def __call__(self, event: MapProgress) -> None:
        if event.phase in ("done", "stopped"):
            parts = [f"{event.done}/{event.total} done"]
            if event.failed:
                parts.append(f"{event.failed} failed")
            if event.cached:
                parts.append(f"{event.cached} from an earlier run")
            if event.phase == "stopped":
                parts.append("stopped")
            line = "  ".join(parts)
        else:
            line = event.line()
        self.line.show(line)


class _TextBar:
    """The terminal's bar: ``[#####.....] 37/200 done  12.4 items/s  0:13 left`` on standard error."""

    def __init__(self, width: int = 24) -> None:
        self.width = width

    def __call__(self, event: MapProgress) -> None:
        share = (event.done + event.failed) / event.total if event.total else 1.0
        filled = round(share * self.width)
        end = "\n" if event.phase in ("done", "stopped") else ""
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {event.line()}{end}")
        sys.stderr.flush()
