"""Answers as data: a prompt asked with a schema, its answer parsed and checked.

:func:`ask_structured` sends a prompt so that its answer is JSON following a
schema (see :mod:`lollms_magics.core.schemas` for what a schema may be), and
returns a :class:`StructuredResponse`: it streams like any answer, and once
read its :attr:`~StructuredResponse.data` holds the Python value.

How the answer is made to fit, on every backend:

1. the schema and the shape of the answer go into the system prompt;
2. the binding constrains the backend to the schema where it can (Ollama's
   ``format``, OpenAI-compatible ``response_format``, llama.cpp's grammar),
   falling back by itself where a server refuses;
3. the JSON is found in the answer (the whole text, a fenced block, or the
   first balanced ``{...}`` / ``[...]`` in prose) and checked with ``jsonschema``;
4. an answer that does not fit is shown to the model with what is wrong, once;
5. one that still does not fit ends the answer with
   :class:`~lollms_magics.errors.StructuredOutputError`, naming the first field
   that failed and keeping the raw text.

``jsonschema`` is imported on the first check, never when the package loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import StructuredOutputError
from ..response import Response
from .schemas import Schema, as_schema, describe_error

if TYPE_CHECKING:
    from ..bindings.base import Binding

__all__ = ["AnswerProblem", "Schema", "StructuredResponse", "as_schema", "ask_structured", "find_json",
           "instructions", "read_data"]

# Where to look for JSON in prose: at most this many opening brackets are tried.
_MAX_STARTS = 16


class AnswerProblem(ValueError):
    """Why an answer cannot be used as data, in one line (it becomes the repair request and the error)."""


def instructions(spec: Schema, system: str | None = None) -> str:
    """The system prompt that asks for ``spec``: ``system`` (if any), then the schema and the shape."""
    schema = json.dumps(spec.wire, ensure_ascii=False, separators=(",", ":"))
    shape = json.dumps(_example(spec.wire), ensure_ascii=False)
    asked = (
        "Answer with one JSON object and nothing else: no text before or after it, no code fence.\n"
        f"It follows this JSON Schema: {schema}\n"
        f"Its shape, with placeholder values to replace: {shape}"
    )
    return f"{system}\n\n{asked}" if system else asked


def _example(schema: Any, depth: int = 0) -> Any:
    """A value of the schema's shape, for the instructions (the first option of each choice)."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for choice in ("anyOf", "oneOf"):
        options = [s for s in schema.get(choice) or [] if isinstance(s, dict) and s.get("type") != "null"]
        if options:
            return _example(options[0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {name: _example(sub, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        item = _example(schema.get("items"), depth + 1)
        return [] if item is None else [item]
    return {"string": "string", "integer": 0, "number": 0.0, "boolean": False}.get(str(kind))


def find_json(text: str) -> Any:
    """The JSON value in an answer: the whole text, a fenced block, or the first balanced one in prose.

    Raises :class:`AnswerProblem` saying why none was found.
    """
    body = text.strip()
    if not body:
        raise AnswerProblem("the answer is empty")
    problem: ValueError | None = None
    for candidate in _candidates(body):
        try:
            return json.loads(candidate)
        except ValueError as exc:
            problem = problem or exc
    if problem is None:
        raise AnswerProblem("the answer holds no JSON")
    if isinstance(problem, json.JSONDecodeError):
        where = f" at line {problem.lineno}, column {problem.colno}"
        raise AnswerProblem(f"the answer is not valid JSON ({problem.msg}{where})")
    raise AnswerProblem(f"the answer is not valid JSON ({problem})")


def _candidates(body: str) -> Iterator[str]:
    """Texts that may be the answer's JSON, likeliest first; the first that fails names the problem."""
    if body[0] in "{[":
        yield body
    start = 0
    while True:  # fenced blocks: ```json ... ``` (an unclosed fence runs to the end)
        fence = body.find("```", start)
        if fence < 0:
            break
        line_end = body.find("\n", fence)
        if line_end < 0:
            break
        close = body.find("```", line_end)
        yield body[line_end + 1 : close if close >= 0 else len(body)].strip()
        if close < 0:
            break
        start = close + 3
    starts = 0
    for i, char in enumerate(body):
        if char in "{[":
            yield _balanced(body, i)
            starts += 1
            if starts >= _MAX_STARTS:
                return


def _balanced(text: str, start: int) -> str:
    """``text`` from ``start`` to the bracket that closes it (to the end when none does)."""
    closing = {"{": "}", "[": "]"}
    stack: list[str] = []
    in_string = escaped = False
    for i in range(start, len(text)):
        char = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in closing:
            stack.append(closing[char])
        elif stack and char == stack[-1]:
            stack.pop()
            if not stack:
                return text[start : i + 1]
    return text[start:]


def read_data(text: str, spec: Schema) -> Any:
    """The value of an answer, checked against ``spec``; :class:`AnswerProblem` when it does not fit."""
    value = find_json(text)
    if spec.wrapped and isinstance(value, dict) and set(value) == {"items"}:
        value = value["items"]  # asked for inside an object (see Schema.wire)
    problem = first_mismatch(value, spec.json_schema)
    if problem is not None:
        raise AnswerProblem(f"the answer does not match the schema: {problem}")
    return value


def first_mismatch(value: Any, schema: dict[str, Any]) -> str | None:
    """The first way ``value`` fails ``schema``, as ``field: what is wrong``; None when it fits."""
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for

    error = best_match(validator_for(schema)(schema).iter_errors(value))
    return None if error is None else describe_error(error)


def repair_prompt(problem: str) -> str:
    """What the model is told when its answer did not fit."""
    return (
        f"That answer cannot be used: {problem}. Write the whole answer again as JSON that "
        "follows the schema, and nothing else."
    )


class _Stopped(Exception):
    """An attempt ended stopped without an error (a Stop, a replayed stop): the answer stops too."""


class StructuredResponse(Response):
    """An answer asked for as data: it streams its text, then holds the value in :attr:`data`.

    ``text`` is the raw text of the last attempt; ``attempts`` holds each
    attempt's :class:`~lollms_magics.Response` (two when the first answer did
    not fit and the model was asked again). Token counts add up the attempts.
    Reading an answer that still does not fit raises
    :class:`~lollms_magics.errors.StructuredOutputError`.
    """

    def __init__(
        self,
        first: Response,
        schema: Schema,
        again: Callable[[str, str], Response],
        repairs: int = 1,
    ) -> None:
        super().__init__(first.binding, first.model, first.options)
        self.schema = schema
        self.attempts: list[Response] = [first]
        self.ignored_options = list(first.ignored_options)
        self._again = again
        self._repairs = repairs
        self._data: Any = None
        self._source = self._pieces()
        self.on_abort(lambda: self.attempts[-1].cancel())

    @property
    def data(self) -> Any:
        """The answer's value (a dict, or a list of dicts...), checked against the schema.

        Reads the answer first if it was not read. Raises the error that ended
        it (:class:`~lollms_magics.errors.StructuredOutputError` when it did
        not fit); None when it was stopped before its end.
        """
        if self._state == "new":
            self.text  # noqa: B018  (reads the answer)
        if self.error is not None:
            raise self.error
        return self._data

    @property
    def reasoning(self) -> str:
        """The reasoning of the attempt being read (or the last one)."""
        return self.attempts[-1].reasoning

    def _pieces(self) -> Iterator[str]:
        attempt = self.attempts[0]
        for tries in range(self._repairs + 1):
            yield from attempt
            self._absorb(attempt)
            if not attempt.done:  # stopped without an error: end the same way
                self.cancel()
                raise _Stopped()
            try:
                self._data = read_data(attempt.text, self.schema)
                return
            except AnswerProblem as exc:
                problem = str(exc)
            if tries == self._repairs:
                raise StructuredOutputError(problem, binding=self.binding)
            self.notes.append(f"asked again: the first answer did not fit ({problem})")
            attempt = self._again(attempt.text, problem)
            self.attempts.append(attempt)
            self._chunks.clear()  # the text of this answer is the new attempt's

    def _absorb(self, attempt: Response) -> None:
        self.model = attempt.model
        self.finish_reason = attempt.finish_reason
        for name in ("prompt_tokens", "completion_tokens"):
            counts = [getattr(a, name) for a in self.attempts]
            if all(c is not None for c in counts):
                setattr(self, name, sum(counts))
        self.notes.extend(n for n in attempt.notes if n not in self.notes)


def ask_structured(
    binding: Binding,
    messages: Sequence[Mapping[str, Any]],
    schema: Any,
    *,
    system: str | None = None,
    stream: bool = True,
    constrain: bool = True,
    repairs: int = 1,
    **options: Any,
) -> StructuredResponse:
    """Ask ``binding`` for an answer that follows ``schema``; see the module's help.

    ``messages`` are chat messages (the last one the user's); ``system`` is
    the caller's system prompt, to which the schema's instructions are added.
    ``constrain=False`` leaves the backend unconstrained (instructions only,
    for comparison); ``repairs`` is how many times an answer that does not fit
    is sent back (once by default). Bad options fail here, before any request.
    """
    spec = as_schema(schema)
    prompt = instructions(spec, system)
    wire = spec.wire if constrain else None
    asked = [dict(m) for m in messages]
    first = binding.generate(asked, system=prompt, stream=stream, schema=wire, **options)

    def again(text: str, problem: str) -> Response:
        retry = [*asked, {"role": "assistant", "content": text},
                 {"role": "user", "content": repair_prompt(problem)}]
        return binding.generate(retry, system=prompt, stream=stream, schema=wire, **options)

    return StructuredResponse(first, spec, again, repairs)
