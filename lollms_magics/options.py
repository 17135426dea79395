"""The generation options every binding shares, and their validation.

Options are checked here, before any request is sent, so that a typo or an
out-of-range value fails at once with one clear line. Each binding then maps
the common names to its protocol's own (``n_predict`` is ``max_tokens`` for
OpenAI and ``num_predict`` for Ollama) and reports the ones it cannot honour.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidOptionError

__all__ = ["OPTIONS", "OptionSpec", "validate_options"]


@dataclass(frozen=True)
class OptionSpec:
    """One common option: its type, its bounds and its help text."""

    name: str
    kind: type
    help: str
    minimum: float | None = None
    maximum: float | None = None


OPTIONS: dict[str, OptionSpec] = {
    spec.name: spec
    for spec in (
        OptionSpec("n_predict", int, "maximum number of tokens to generate", 1),
        OptionSpec("temperature", float, "sampling temperature (0 is greedy)", 0, 5),
        OptionSpec("top_k", int, "sample from the k most likely tokens", 0),
        OptionSpec("top_p", float, "nucleus sampling probability mass", 0, 1),
        OptionSpec("repeat_penalty", float, "penalty for repeated tokens", 0),
        OptionSpec("repeat_last_n", int, "how many recent tokens the penalty looks at", -1),
        OptionSpec("seed", int, "random seed, for reproducible sampling"),
        OptionSpec("ctx_size", int, "context window size, in tokens", 1),
        OptionSpec("stop", list, "strings that end the generation"),
    )
}


def _check(spec: OptionSpec, value: Any) -> Any:
    if spec.kind is list:
        if isinstance(value, str):
            return [value]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
        raise InvalidOptionError(f"option {spec.name} takes a string or a list of strings")
    if isinstance(value, bool):
        raise InvalidOptionError(f"option {spec.name} takes a number, not {value!r}")
    if spec.kind is int:
        # numbers.Integral/Real also admit numpy scalars; the wire gets plain Python numbers.
        if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
            if not math.isfinite(value) or not float(value).is_integer():
                raise InvalidOptionError(
                    f"option {spec.name} takes a whole number, not {value!r}"
                )
            value = int(float(value))
        if not isinstance(value, numbers.Integral):
            raise InvalidOptionError(f"option {spec.name} takes a whole number, not {value!r}")
        value = int(value)
    else:
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise InvalidOptionError(f"option {spec.name} takes a number, not {value!r}")
        value = float(value)
    if spec.minimum is not None and value < spec.minimum:
        raise InvalidOptionError(
            f"option {spec.name} must be at least {spec.minimum:g}, not {value}"
        )
    if spec.maximum is not None and value > spec.maximum:
        raise InvalidOptionError(
            f"option {spec.name} must be at most {spec.maximum:g}, not {value}"
        )
    return value


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``options`` checked and normalised; ``None`` values are dropped.

    Raises :class:`~lollms_magics.errors.InvalidOptionError` for an unknown
    name or a bad value.
    """
    checked: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        spec = OPTIONS.get(name)
        if spec is None:
            known = ", ".join(OPTIONS)
            raise InvalidOptionError(f"unknown option {name!r}; the options are: {known}")
        checked[name] = _check(spec, value)
    return checked
