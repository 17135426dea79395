"""What an answer asked for as data must look like: a schema, from whatever the user wrote.

:func:`as_schema` takes a JSON Schema (a dict, or its JSON text), a class with
``model_json_schema()`` (pydantic), a dataclass, a ``TypedDict``, or the short
form typed in a magic line::

    name: str, year: int, tags: list[str], sentiment: positive|negative

The short form's grammar:

* fields are ``NAME: TYPE``, separated by commas; a NAME with spaces is quoted;
* TYPE is ``str``, ``int``, ``float``, ``bool``, ``list[TYPE]`` (``list`` alone
  takes anything), a nested object ``{NAME: TYPE, ...}``, or literals joined by
  ``|`` (``positive|negative``, ``1|2|3``, ``'in stock'|'sold out'``);
* a ``?`` after a TYPE lets the value be null (``year: int?``): the model
  writes null when the text does not say;
* the whole list of fields between ``[`` and ``]`` asks for a list of such objects.

Every field of the short form is required and no other is allowed, which is
what OpenAI's strict structured outputs want.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidOptionError

__all__ = ["Schema", "as_schema", "describe_error", "parse_short_form", "schema_of_type"]

_SCALARS = {
    "str": "string", "string": "string", "int": "integer", "integer": "integer",
    "float": "number", "number": "number", "bool": "boolean", "boolean": "boolean",
}
# Keywords of which a JSON Schema dict holds at least one (a dict without is a mistake).
_KEYWORDS = frozenset({
    "type", "properties", "items", "enum", "const", "anyOf", "oneOf", "allOf", "not", "$ref", "$defs",
    "definitions", "prefixItems", "additionalProperties", "required", "if", "format", "pattern",
})
# TypedDict's NotRequired[...] / Required[...] (Python 3.11+), unwrapped to the type they hold.
_REQUIREDNESS = tuple(filter(None, (getattr(typing, "NotRequired", None), getattr(typing, "Required", None))))
# A token of the short form: a quoted name or value, a punctuation mark, or a bare word.
_TOKEN = re.compile(
    r"""\s*(?:(?P<quoted>"(?:\\.|[^"\\])*"|'[^']*')|(?P<punct>[\[\]{}:,|?])|(?P<word>[^\s\[\]{}:,|?"']+))"""
)


@dataclass(frozen=True)
class Schema:
    """A JSON Schema an answer must match, and how it is asked for.

    ``json_schema`` is the schema the answer is checked against; ``fields``
    its top-level properties when it describes an object (else ``[]``);
    ``name`` a name for the APIs that want one. A schema whose root is not
    an object is asked for inside one (``{"items": ...}``), since OpenAI's
    strict mode takes objects only; :attr:`wire` is what the model is asked for.
    """

    json_schema: dict[str, Any]
    name: str = "answer"
    fields: list[str] = field(default_factory=list)

    @property
    def wrapped(self) -> bool:
        """True when the schema's root is not an object, so the model is asked for ``{"items": ...}``."""
        return self.json_schema.get("type") != "object"

    @property
    def wire(self) -> dict[str, Any]:
        """The schema the model is asked to follow."""
        if not self.wrapped:
            return self.json_schema
        inner = {k: v for k, v in self.json_schema.items() if k not in ("$defs", "definitions", "$schema")}
        wire: dict[str, Any] = {
            "type": "object", "properties": {"items": inner}, "required": ["items"],
            "additionalProperties": False,
        }
        for defs in ("$defs", "definitions"):
            if defs in self.json_schema:
                wire[defs] = self.json_schema[defs]
        return wire


def as_schema(spec: Any) -> Schema:
    """The :class:`Schema` for ``spec``; :class:`InvalidOptionError` (one line) when it is not one.

    ``spec`` is a JSON Schema (a dict, or its JSON text), a class with
    ``model_json_schema()`` (pydantic), a dataclass, a ``TypedDict``, the short
    form (see the module's help), or a :class:`Schema`.
    """
    if isinstance(spec, Schema):
        return spec
    name = "answer"
    if isinstance(spec, str):
        text = spec.strip()
        if text.startswith("{") and text.rstrip().endswith("}") and '"' in text:
            try:
                schema = json.loads(text)
            except ValueError:
                schema = parse_short_form(text)  # {a: int} is the short form of a nested object
        else:
            schema = parse_short_form(text)
    elif isinstance(spec, dict):
        schema = spec
    elif isinstance(spec, type) and callable(getattr(spec, "model_json_schema", None)):
        schema = getattr(spec, "model_json_schema")()  # noqa: B009  (a pydantic model's method)
        name = spec.__name__
    elif isinstance(spec, type) and (dataclasses.is_dataclass(spec) or typing.is_typeddict(spec)):
        schema = schema_of_type(spec)
        name = spec.__name__
    else:
        raise InvalidOptionError(
            f"a schema is a JSON Schema dict, a dataclass, a TypedDict, a pydantic model or a short form "
            f"such as 'name: str, year: int', not {type(spec).__name__}"
        )
    if not isinstance(schema, dict):
        raise InvalidOptionError(f"a JSON Schema is an object, not {type(schema).__name__}")
    if not _KEYWORDS & set(schema):
        raise InvalidOptionError(
            "this dict is not a JSON Schema (it has no 'type' or 'properties'): write "
            "{'type': 'object', 'properties': {...}}, or the short form 'name: str, year: int'"
        )
    _check(schema)
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title") or name))[:64] or "answer"
    properties = schema.get("properties") if schema.get("type") == "object" else None
    fields = list(properties) if isinstance(properties, dict) else []
    return Schema(schema, name, fields)


def _check(schema: dict[str, Any]) -> None:
    """Refuse a schema that is not valid JSON Schema, in one line."""
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise InvalidOptionError(f"not a valid JSON Schema: {describe_error(exc)}") from None


def describe_error(error: Any) -> str:
    """A ``jsonschema`` error in one line that names its place: ``year: 'x' is not of type 'integer'``.

    Of a choice (``anyOf``), the reason the closest option failed is given:
    a nullable field's value is not blamed for not being null.
    """
    from jsonschema.exceptions import best_match

    while error.validator in ("anyOf", "oneOf") and error.context:
        options = [e for e in error.context if not (e.validator == "type" and e.validator_value == "null")]
        closest = best_match(options) if options else None
        if closest is None:
            break
        error = closest
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    message = _one_line(error.message, 160)
    return f"{path}: {message}" if path else message


# -- the short form -------------------------------------------------------------


def parse_short_form(text: str) -> dict[str, Any]:
    """The JSON Schema of a short form such as ``"name: str, year: int?, tags: list[str]"``."""
    tokens = _tokens(text)
    parser = _Parser(text, tokens)
    if parser.peek() == "[":
        parser.take("[")
        schema: dict[str, Any] = {"type": "array", "items": parser.fields("]")}
        parser.take("]")
    else:
        schema = parser.fields(None)
    if parser.peek() is not None:
        parser.fail(f"unexpected {parser.peek()!r}")
    return schema


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip():
                raise _short_form_error(text, f"cannot read {text[pos:].strip()[:20]!r}")
            break
        pos = match.end()
        tokens.append(match.group(match.lastgroup or "word"))
    return tokens


class _Parser:
    def __init__(self, text: str, tokens: list[str]) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0

    def fail(self, problem: str) -> None:
        raise _short_form_error(self.text, problem)

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None:
            self.fail(f"it ends where {expected!r} was expected" if expected else "it ends too early")
        assert token is not None
        if expected is not None and token != expected:
            self.fail(f"{expected!r} expected before {token!r}")
        self.pos += 1
        return token

    def fields(self, closing: str | None) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        while True:
            name = self.take()
            if name in "[]{}:,|?":
                self.fail(f"a field name expected before {name!r}")
            name = _unquote(name)
            if name in properties:
                self.fail(f"field {name!r} is given twice")
            if self.peek() != ":":
                self.fail(f"field {name!r} needs a type, as in {name}: str")
            self.take(":")
            properties[name] = self.type_()
            if self.peek() != ",":
                break
            self.take(",")
            if self.peek() == closing:  # a trailing comma
                break
        if self.peek() != closing:
            self.fail(f"',' expected before {self.peek()!r}")
        return {
            "type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False,
        }

    def type_(self) -> dict[str, Any]:
        token = self.take()
        if token == "{":
            schema = self.fields("}")
            self.take("}")
        elif token.lower() == "list" and self.peek() == "[":
            self.take("[")
            schema = {"type": "array", "items": self.type_()}
            self.take("]")
        elif token.lower() == "list":
            schema = {"type": "array"}
        elif token.lower() in _SCALARS and self.peek() != "|":
            schema = {"type": _SCALARS[token.lower()]}
        elif token in "[]{}:,|?":
            self.fail(f"a type expected before {token!r}")
            raise AssertionError  # unreachable: fail raises
        else:
            schema = self.literals(token)
        if self.peek() == "?":
            self.take("?")
            schema = {"anyOf": [schema, {"type": "null"}]}
        return schema

    def literals(self, first: str) -> dict[str, Any]:
        values = [_literal(first)]
        while self.peek() == "|":
            self.take("|")
            token = self.take()
            if token in "[]{}:,|?":
                self.fail(f"a value expected after '|', not {token!r}")
            values.append(_literal(token))
        if len(values) == 1 and first[:1] not in "'\"":
            self.fail(f"unknown type {first!r}")
        kinds = {type(v) for v in values}
        schema: dict[str, Any] = {"enum": values}
        if kinds == {str}:
            schema = {"type": "string", "enum": values}
        elif kinds <= {int}:
            schema = {"type": "integer", "enum": values}
        return schema


def _unquote(token: str) -> str:
    if token[:1] == '"':
        return str(json.loads(token))
    if token[:1] == "'":
        return token[1:-1]
    return token


def _literal(token: str) -> Any:
    if token[:1] in "'\"":
        return _unquote(token)
    if token in ("true", "false"):
        return token == "true"
    for kind in (int, float):
        try:
            return kind(token)
        except ValueError:
            pass
    return token


def _short_form_error(text: str, problem: str) -> InvalidOptionError:
    return InvalidOptionError(
        f"cannot read the schema {_one_line(text, 80)!r}: {problem} "
        "(the short form is 'name: str, year: int?, tags: list[str], mood: happy|sad')"
    )


# -- Python types ---------------------------------------------------------------


def schema_of_type(hint: Any, _seen: tuple[Any, ...] = ()) -> dict[str, Any]:
    """The JSON Schema of a Python type: a dataclass, a TypedDict, ``list[int]``, ``Literal[...]``...

    A field with a default (a dataclass's) or a ``NotRequired`` one (a
    TypedDict's) is not required; ``X | None`` may be null.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint in (str, int, float, bool):
        return {"type": _SCALARS[hint.__name__]}
    if hint is typing.Any or hint is object:
        return {}
    if hint is type(None):
        return {"type": "null"}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        options = [schema_of_type(a, _seen) for a in args]
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin in (list, set, frozenset, tuple) or hint in (list, set, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return {"type": "array", "prefixItems": [schema_of_type(a, _seen) for a in args],
                    "minItems": len(args), "maxItems": len(args)}
        return {"type": "array", **({"items": schema_of_type(args[0], _seen)} if args else {})}
    if origin is dict or hint is dict:
        value = args[1] if len(args) == 2 else typing.Any
        return {"type": "object", "additionalProperties": schema_of_type(value, _seen)}
    if origin is typing.Annotated:
        return schema_of_type(args[0], _seen)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [member.value for member in hint]}
    if isinstance(hint, type) and (dataclasses.is_dataclass(hint) or typing.is_typeddict(hint)):
        if hint in _seen:
            raise InvalidOptionError(f"{hint.__name__} contains itself; write its JSON Schema instead")
        return _object_of_class(hint, (*_seen, hint))
    if isinstance(hint, type) and callable(getattr(hint, "model_json_schema", None)):
        nested: dict[str, Any] = getattr(hint, "model_json_schema")()  # noqa: B009
        return nested
    raise InvalidOptionError(f"no JSON Schema for the type {getattr(hint, '__name__', hint)!r}")


def _object_of_class(cls: type, seen: tuple[Any, ...]) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except (NameError, TypeError) as exc:
        raise InvalidOptionError(f"cannot read the field types of {cls.__name__} ({exc})") from None
    if dataclasses.is_dataclass(cls):
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        optional = {
            f.name for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        }
    else:
        names = list(hints)
        optional = set(getattr(cls, "__optional_keys__", ()))
    properties: dict[str, Any] = {}
    for name in names:
        hint = hints[name]
        if typing.get_origin(hint) is typing.Annotated:
            hint = typing.get_args(hint)[0]
        if typing.get_origin(hint) in _REQUIREDNESS:
            hint = typing.get_args(hint)[0]
        try:
            properties[name] = schema_of_type(hint, seen)
        except InvalidOptionError as exc:
            raise InvalidOptionError(f"{cls.__name__}.{name}: {exc}") from None
    return {
        "title": cls.__name__, "type": "object", "properties": properties,
        "required": [n for n in names if n not in optional], "additionalProperties": False,
    }


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
