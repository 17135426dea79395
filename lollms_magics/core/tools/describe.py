"""A Python function described as a tool: its JSON Schema from the signature, hints and docstring.

The description is the docstring's first paragraph; each parameter's own
description comes from its numpy-style (``name : type`` then an indented
line), Google-style (``Args:`` then ``name (type): text``) or Sphinx-style
(``:param name: text``) entry when the docstring has one. The types that
become JSON are ``str``, ``int``, ``float``, ``bool``, ``None``, lists,
tuples and sets of them, ``dict[str, X]``, ``Literal[...]``, enums,
``Optional``/unions, and dataclasses or TypedDicts built of those; a
parameter of another type (a DataFrame...) cannot come from the model and
is refused when the tool is made, naming it.
"""

from __future__ import annotations

import collections.abc as abc
import dataclasses
import enum
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, Union, overload

from ...errors import InvalidOptionError

__all__ = ["Tool", "as_tools", "tool"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
_SAFE_MARK = "__lollms_tool_safe__"
F = TypeVar("F", bound=Callable[..., Any])


@overload
def tool(fn: F, *, safe: bool = False) -> F: ...
@overload
def tool(fn: None = None, *, safe: bool = False) -> Callable[[F], F]: ...


def tool(fn: Callable[..., Any] | None = None, *, safe: bool = False) -> Any:
    """Mark a function as a tool; ``safe=True`` lets the model call it without asking the user.

    Use as ``@tool`` or ``@tool(safe=True)``. The function is returned
    unchanged (it still runs as before); only a mark is set on it. Mark safe
    only functions that read and cannot harm: nothing asks before they run.
    """

    def mark(f: F) -> F:
        setattr(f, _SAFE_MARK, bool(safe))
        return f

    return mark(fn) if fn is not None else mark  # type: ignore[arg-type]


@dataclass
class Tool:
    """A function offered to the model, with the JSON Schema of its arguments.

    ``parameters`` is an object schema (``properties``, ``required``,
    ``additionalProperties: false``); the arguments of every call are
    validated against it before ``fn`` runs. ``safe`` tools run without
    approval.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    safe: bool = False
    # Parameters whose value is built from the JSON object (dataclasses, TypedDicts, enums).
    builders: dict[str, Callable[[Any], Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_function(
        cls, fn: Callable[..., Any], *, name: str | None = None, safe: bool | None = None
    ) -> Tool:
        """Describe ``fn``; ``safe`` defaults to the :func:`tool` mark (else False).

        Raises :class:`~lollms_magics.errors.InvalidOptionError` for a
        function the model cannot call: no usable name (a lambda), a
        parameter only positional, or a parameter whose type JSON cannot carry.
        """
        name = str(name or getattr(fn, "__name__", ""))
        if not callable(fn) or not _NAME.match(name):
            raise InvalidOptionError(
                f"{name or fn!r} cannot be a tool: give a function defined with def "
                "(a name of letters, digits, _ or -, 64 at most)"
            )
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):
            raise InvalidOptionError(f"{name} cannot be a tool: its signature cannot be read") from None
        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # a hint naming something not importable here: read them as written
            hints = dict(getattr(fn, "__annotations__", {}))
        doc = inspect.getdoc(fn) or ""
        described = _param_docs(doc)
        properties: dict[str, Any] = {}
        required: list[str] = []
        builders: dict[str, Callable[[Any], Any]] = {}
        extra = False
        for param in signature.parameters.values():
            if param.kind is param.VAR_KEYWORD:
                extra = True
                continue
            if param.kind is param.VAR_POSITIONAL:
                continue
            if param.kind is param.POSITIONAL_ONLY:
                raise InvalidOptionError(
                    f"{name} cannot be a tool: its parameter {param.name} is positional-only "
                    "(the model passes arguments by name)"
                )
            hint = hints.get(param.name, Any)
            try:
                schema = json_schema(hint)
            except TypeError as exc:
                raise InvalidOptionError(
                    f"{name} cannot be a tool: its parameter {param.name} ({exc}) cannot come "
                    "from the model as JSON; take str, int, float, bool, lists, Literal, "
                    "a dataclass... and look the object up inside the function"
                ) from None
            if param.name in described:
                schema = {**schema, "description": described[param.name]}
            if param.default is param.empty:
                required.append(param.name)
            elif _plain_json(param.default):
                schema = {**schema, "default": param.default}
            properties[param.name] = schema
            builder = _builder(hint)
            if builder is not None:
                builders[param.name] = builder
        parameters: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
        if not extra:
            parameters["additionalProperties"] = False
        marked = getattr(fn, _SAFE_MARK, False)
        safe = marked if safe is None else safe
        return cls(name, _first_paragraph(doc) or name, parameters, fn, safe, builders)

    def schema(self) -> dict[str, Any]:
        """The tool as offered to the model, in OpenAI's shape (Ollama takes the same)."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def __call__(self, arguments: Mapping[str, Any]) -> Any:
        """Run the function with ``arguments`` (already validated), building typed values first."""
        built = {k: self.builders[k](v) if k in self.builders else v for k, v in arguments.items()}
        return self.fn(**built)


def as_tools(items: Sequence[Callable[..., Any] | Tool] | Callable[..., Any] | Tool) -> list[Tool]:
    """Functions (or :class:`Tool`) as tools, refusing two with the same name."""
    if isinstance(items, Tool) or callable(items):
        items = [items]
    tools = [item if isinstance(item, Tool) else Tool.from_function(item) for item in items]
    seen: set[str] = set()
    for t in tools:
        if t.name in seen:
            raise InvalidOptionError(f"two tools are named {t.name}: give each function its own name")
        seen.add(t.name)
    return tools


# -- types to JSON Schema -------------------------------------------------------


def json_schema(hint: Any) -> dict[str, Any]:
    """The JSON Schema of a type hint; TypeError naming the type when JSON cannot carry it."""
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if hint is list or hint is tuple or hint is set or hint is frozenset:
        return {"type": "array"}
    if hint is dict:
        return {"type": "object"}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        kinds = {_SIMPLE.get(type(a)) for a in args}
        out: dict[str, Any] = {"enum": list(args)}
        if len(kinds) == 1 and None not in kinds:
            out["type"] = kinds.pop()
        return out
    if origin is Union or origin is types.UnionType:
        options = [json_schema(a) for a in args]
        plain = [o.get("type") for o in options if set(o) == {"type"} and isinstance(o.get("type"), str)]
        if len(plain) == len(options):
            return {"type": plain}
        return {"anyOf": options}
    if origin in (list, set, frozenset, abc.Sequence, abc.Iterable):
        return {"type": "array", "items": json_schema(args[0])} if args else {"type": "array"}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": json_schema(args[0])}
        items = [json_schema(a) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
    if origin in (dict, abc.Mapping):
        if args and args[0] is not str:
            raise TypeError(f"{_name(hint)}: JSON object keys are strings")
        if not args:
            return {"type": "object"}
        return {"type": "object", "additionalProperties": json_schema(args[1])}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [m.value for m in hint]}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        names = {f.name: f.type for f in dataclasses.fields(hint)}
        return _object_schema(hint, names, _dataclass_required(hint))
    if typing.is_typeddict(hint):
        return _object_schema(hint, None, set(getattr(hint, "__required_keys__", ())))
    raise TypeError(_name(hint))


def _object_schema(cls: type, fields: dict[str, Any] | None, required: set[str]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    names = list(fields) if fields is not None else list(hints)
    properties = {n: json_schema(hints.get(n, Any)) for n in names}
    return {
        "type": "object",
        "properties": properties,
        "required": [n for n in names if n in required],
        "additionalProperties": False,
    }


def _dataclass_required(cls: type) -> set[str]:
    missing = dataclasses.MISSING
    return {
        f.name for f in dataclasses.fields(cls) if f.default is missing and f.default_factory is missing
    }


def _builder(hint: Any) -> Callable[[Any], Any] | None:
    """How to turn the JSON value of a parameter into the value the function expects, if not as is."""
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = typing.get_type_hints(hint)
        inner = {n: b for n, h in hints.items() if (b := _builder(h)) is not None}

        def build(value: Any) -> Any:
            return hint(**{k: inner[k](v) if k in inner else v for k, v in value.items()})

        return build
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        real = [a for a in args if a is not type(None)]
        one = _builder(real[0]) if len(real) == 1 else None
        if one is not None:
            build_one = one
            return lambda value: None if value is None else build_one(value)
    if origin in (tuple, set, frozenset):
        return origin  # type: ignore[no-any-return]
    return None


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def _plain_json(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain_json(v) for v in value)
    return False


# -- docstrings -------------------------------------------------------------------

_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Returns?|Raises|Yields|Examples?|Notes?)\s*:?\s*$"
)


def _first_paragraph(doc: str) -> str:
    lines: list[str] = []
    for line in doc.strip().splitlines():
        if not line.strip() or _SECTION.match(line.strip()):
            break
        lines.append(line.strip())
    return " ".join(lines)


def _param_docs(doc: str) -> dict[str, str]:
    """Each parameter's description, from a numpy, Google or Sphinx docstring."""
    found: dict[str, str] = {}
    for m in re.finditer(r":param\s+(?:\w+\s+)?(\w+)\s*:\s*(.+(?:\n(?!\s*:)\s+.+)*)", doc):
        found[m.group(1)] = _squash(m.group(2))
    lines = doc.splitlines()
    i = 0
    while i < len(lines):
        head = lines[i].strip()
        if head in ("Args:", "Arguments:", "Parameters:", "Params:", "Keyword Args:"):  # Google
            i = _google(lines, i + 1, found)
            continue
        underlined = i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"}
        if head in ("Parameters", "Other Parameters") and underlined:
            i = _numpy(lines, i + 2, found)
            continue
        i += 1
    return found


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _google(lines: list[str], i: int, found: dict[str, str]) -> int:
    base: int | None = None
    current: str | None = None
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if base is None:
            base = _indent(line)
        if _indent(line) < base:
            break
        m = re.match(r"\s*\**(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
        if _indent(line) == base and m:
            current = m.group(1)
            found[current] = m.group(2).strip()
        elif _indent(line) > base and current:
            found[current] = _squash(found[current] + " " + line)
        else:
            break
        i += 1
    return i


def _numpy(lines: list[str], i: int, found: dict[str, str]) -> int:
    current: list[str] = []
    while i < len(lines):
        line = lines[i]
        if line.strip() and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"} and not _indent(line):
            break  # the next section
        if line.strip() and not _indent(line):
            current = [n.strip() for n in line.split(":")[0].split(",")]
            for name in current:
                found.setdefault(name, "")
        elif line.strip() and current:
            for name in current:
                found[name] = _squash(found[name] + " " + line)
        i += 1
    return i


def _squash(text: str) -> str:
    return " ".join(text.split())
