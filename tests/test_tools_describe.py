"""A function described as a tool: the JSON Schema from its signature, hints and docstring."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal, Optional, TypedDict

import jsonschema
import pytest

from lollms_magics import tool as exported_tool
from lollms_magics.core.tools import Tool, as_tools, tool
from lollms_magics.errors import InvalidOptionError


def numpy_style(city: str, days: int = 3, units: Literal["metric", "imperial"] = "metric") -> str:
    """Forecast the weather of a city.

    Uses the free service; this second paragraph is not the description.

    Parameters
    ----------
    city : str
        The city's name,
        in English.
    days : int
        How many days ahead.

    Returns
    -------
    str
    """
    return city


def google_style(query: str, limit: Optional[int] = None, tags: list[str] | None = None) -> list[str]:  # noqa: UP045
    """Search the notes.

    Args:
        query (str): Words to look for.
        limit: At most this many
            results.
    """
    return []


def sphinx_style(a: float, b: float) -> float:
    """Divide.

    :param a: the dividend
    :param float b: the divisor
    """
    return a / b


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Box:
    width: float
    height: float = 1.0
    color: Color = Color.RED


class Person(TypedDict):
    name: str
    age: int


def test_numpy_docstring_and_literal() -> None:
    t = Tool.from_function(numpy_style)
    assert t.name == "numpy_style" and t.description == "Forecast the weather of a city."
    assert t.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city's name, in English."},
            "days": {"type": "integer", "description": "How many days ahead.", "default": 3},
            "units": {"enum": ["metric", "imperial"], "type": "string", "default": "metric"},
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    assert t.schema() == {
        "type": "function",
        "function": {"name": "numpy_style", "description": "Forecast the weather of a city.",
                     "parameters": t.parameters},
    }
    assert not t.safe


def test_google_docstring_optional_and_lists() -> None:
    props = Tool.from_function(google_style).parameters["properties"]
    assert props["query"] == {"type": "string", "description": "Words to look for."}
    assert props["limit"] == {"type": ["integer", "null"], "description": "At most this many results.",
                              "default": None}
    assert props["tags"] == {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                             "default": None}


def test_sphinx_docstring() -> None:
    t = Tool.from_function(sphinx_style)
    assert t.description == "Divide."
    described = [t.parameters["properties"][n]["description"] for n in ("a", "b")]
    assert described == ["the dividend", "the divisor"]


def test_dataclass_typeddict_and_enum_are_described_and_built() -> None:
    seen: list[Any] = []

    def place(box: Box, owner: Person, colors: list[Color] | None = None) -> str:
        """Place a box."""
        seen.append((box, owner))
        return "ok"

    t = Tool.from_function(place)
    props = t.parameters["properties"]
    assert props["box"] == {
        "type": "object",
        "properties": {"width": {"type": "number"}, "height": {"type": "number"},
                       "color": {"enum": ["red", "blue"]}},
        "required": ["width"],
        "additionalProperties": False,
    }
    assert props["owner"]["required"] == ["name", "age"]
    arguments = {"box": {"width": 2, "color": "blue"}, "owner": {"name": "Ada", "age": 36}}
    jsonschema.validate(arguments, t.parameters)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"box": {"width": 2, "color": "green"}, "owner": {"name": "Ada", "age": 1}},
                            t.parameters)
    assert t(arguments) == "ok"
    box, owner = seen[0]
    assert box == Box(2, 1.0, Color.BLUE) and owner == {"name": "Ada", "age": 36}


def test_kwargs_open_the_object_and_no_hint_means_any() -> None:
    def free(x, **rest: Any) -> None:  # type: ignore[no-untyped-def]
        """Anything goes."""

    t = Tool.from_function(free)
    assert t.parameters == {"type": "object", "properties": {"x": {}}, "required": ["x"]}


def test_the_safe_mark() -> None:
    @tool(safe=True)
    def reads() -> str:
        """Reads."""
        return ""

    @tool
    def writes() -> str:
        """Writes."""
        return ""

    assert exported_tool is tool
    assert Tool.from_function(reads).safe and not Tool.from_function(writes).safe
    assert not Tool.from_function(reads, safe=False).safe
    assert reads() == ""  # still the same function


class Frame:
    """Not JSON."""


def test_functions_the_model_cannot_call_are_refused_when_offered() -> None:
    def takes_frame(df: Frame) -> None:
        """Uses a frame."""

    def positional(a: int, /) -> None:
        """Positional only."""

    with pytest.raises(InvalidOptionError, match="parameter df \\(Frame\\) cannot come from the model"):
        Tool.from_function(takes_frame)
    with pytest.raises(InvalidOptionError, match="positional-only"):
        Tool.from_function(positional)
    with pytest.raises(InvalidOptionError, match="give a function defined with def"):
        Tool.from_function(lambda x: x)
    with pytest.raises(InvalidOptionError, match="two tools are named numpy_style"):
        as_tools([numpy_style, Tool.from_function(google_style, name="numpy_style")])
