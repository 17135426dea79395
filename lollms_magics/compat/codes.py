"""lollms-client's prompt helpers: code in fences, yes/no and multiple-choice questions.

* ``generate_code(prompt, ...)`` asks for one fenced code block (a
  ``template`` shown inside the fence when given) and returns its content,
  continuing a block the model left open up to three times, as
  lollms-client does; ``None`` when no block came back or the call failed.
* ``generate_codes(prompt, ...)`` asks for one block per file and returns
  them as :func:`extract_code_blocks` does, each also with ``"language"``
  (1.x's key for ``"type"``).
* ``extract_code_blocks(text, format="markdown")``: lollms-client's
  ``[{"index", "file_name", "content", "type", "is_complete"}]``; the file
  name is read from the line before a block (``<file_name>x</file_name>``,
  ``## filename: x``, ``File: x``); ``format="html"`` reads ``<code>`` tags.
* ``yes_no(question, context, ...)`` and ``multichoice_question(question,
  possible_answers, context, ...)`` ask for JSON through
  :meth:`generate_structured_content` (the schema support of
  :mod:`lollms_magics.core.structured`: constrained where the backend can
  be, checked, asked again once): a ``bool`` or an answer index (``-1`` when
  none fits or the call failed), or with ``return_explanation=True``
  ``{"answer"|"index": ..., "explanation": ...}``.

The 0.x and 1.x argument orders differ after the first arguments (0.x:
``max_answer_length, conditionning, return_explanation, callback``; 1.x:
``system_prompt, return_explanation, images``); the extra positional
arguments of ``yes_no`` and ``multichoice_question`` are read by their type,
so scripts of both eras work.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from .generation import Generating

__all__ = ["CodeHelpers", "extract_code_blocks", "extract_thinking_blocks", "remove_thinking_blocks"]

# Arguments of lollms-client's helpers that are not generation options here.
_NOT_OPTIONS = frozenset({"debug", "accept_all_if_no_code_tags_is_present", "return_full_generated_code"})
CONTINUATIONS = 3  # lollms-client's bound on "continue the code" calls
_FILE_NAME = (
    re.compile(r"^<file_name>(.*)</file_name>$"),
    re.compile(r"^#*\s*(?:file_?name|file)\s*:\s*(.+)$", re.IGNORECASE),
)
_THINKING = re.compile(r"<(think|thinking)>(.*?)</\1>", re.DOTALL | re.IGNORECASE)


def extract_code_blocks(text: str, format: str = "markdown", *, strip: bool = True) -> list[dict[str, Any]]:
    """The code blocks of ``text``: ``[{"index", "file_name", "content", "type", "is_complete"}]``.

    ``format`` is ``"markdown"`` (triple backticks; the word after the
    opening fence is the ``type``) or ``"html"`` (``<code>`` tags, the type
    from ``language=`` or ``class="language-..."``). A block left open at the
    end has ``is_complete=False``. ``strip=False`` keeps the first line's
    indentation (for a block that continues another).
    """
    kind = format.lower()
    if kind not in ("markdown", "html"):
        raise ValueError("Format must be 'markdown' or 'html'")
    spans = _fences(text) if kind == "markdown" else _code_tags(text)
    blocks: list[dict[str, Any]] = []
    for start, body, end_found, label in spans:
        content = body
        if kind == "markdown":
            first, _, rest = body.partition("\n")
            if first.strip() and " " not in first.strip() and "\n" in body:
                label, content = first.strip(), rest
        block = {
            "index": len(blocks), "file_name": _file_name(text[:start]),
            "content": content.strip() if strip else content.strip("\n"),
            "type": label or "language-specific", "is_complete": end_found,
        }
        if block["content"] or end_found:
            blocks.append(block)
    return blocks


def _fences(text: str) -> list[tuple[int, str, bool, str]]:
    """``(start, body, closed, "")`` for each ```` ``` ```` pair; an odd last fence runs to the end."""
    marks = [m.start() for m in re.finditer("```", text)]
    spans = []
    for i in range(0, len(marks), 2):
        start = marks[i]
        closed = i + 1 < len(marks)
        body = text[start + 3: marks[i + 1]] if closed else text[start + 3:]
        spans.append((start, body, closed, ""))
    return spans


def _code_tags(text: str) -> list[tuple[int, str, bool, str]]:
    spans = []
    for match in re.finditer(r"<code([^>]*)>(.*?)(</code>|\Z)", text, re.DOTALL):
        attributes = match.group(1)
        label = re.search(r'language(?:=|-)["\']?([\w+#.-]+)', attributes)
        spans.append((match.start(), match.group(2), bool(match.group(3)), label.group(1) if label else ""))
    return spans


def _file_name(before: str) -> str:
    lines = before.strip().splitlines()
    last = lines[-1].strip() if lines else ""
    for pattern in _FILE_NAME:
        found = pattern.match(last)
        if found:
            return found.group(1).strip().strip("`*")
    return ""


def extract_thinking_blocks(text: str) -> list[str]:
    """The contents of the ``<think>``/``<thinking>`` blocks of ``text``."""
    return [m.group(2).strip() for m in _THINKING.finditer(text)]


def remove_thinking_blocks(text: str) -> str:
    """``text`` without its ``<think>``/``<thinking>`` blocks, blank runs folded."""
    return re.sub(r"\n\s*\n", "\n\n", _THINKING.sub("", text).strip())


def _fence_instructions(template: str | None, language: str | None, tag_format: str, several: bool) -> str:
    label = language or ""
    if several:
        return (
            "Put each file in its own code block, on the line before it write File: followed by the "
            "file's name, and open each block with ``` and the language, and close it with ```."
        )
    if tag_format == "html":
        opening, closing = f'<code language="{label}">', "</code>"
    else:
        opening, closing = f"```{label}", "```"
    lines = ["Answer with the code in a single code block:"]
    lines.append(f"{opening}\n{template}\n{closing}" if template else f"{opening}\n...\n{closing}")
    if template and (language or "").lower() in ("json", "yaml", "xml"):
        lines.append("Fill every field and keep exactly the keys of the template.")
    lines.append("Do not split the code into several blocks.")
    return "\n".join(lines)


def _read_extras(extras: Sequence[Any], names: dict[type, str], into: dict[str, Any]) -> None:
    """Put the positional ``extras`` into ``into`` by their type (see the module docstring)."""
    for value in extras:
        if value is None:
            continue
        for kind, name in names.items():
            if isinstance(value, kind) and name not in into:
                into[name] = value
                break
        else:
            if callable(value) and "callback" not in into:
                into["callback"] = value
            else:
                raise TypeError(f"unexpected positional argument {value!r}")


class CodeHelpers(Generating):
    """The prompt helpers of :class:`~lollms_magics.compat.client.LollmsClient`."""

    @staticmethod
    def extract_code_blocks(text: str, format: str = "markdown") -> list[dict[str, Any]]:
        """See :func:`extract_code_blocks`."""
        return extract_code_blocks(text, format)

    @staticmethod
    def extract_thinking_blocks(text: str) -> list[str]:
        """See :func:`extract_thinking_blocks`."""
        return extract_thinking_blocks(text)

    @staticmethod
    def remove_thinking_blocks(text: str) -> str:
        """See :func:`remove_thinking_blocks`."""
        return remove_thinking_blocks(text)

    def generate_code(
        self,
        prompt: str,
        images: Sequence[Any] | None = None,
        system_prompt: str | None = None,
        template: str | None = None,
        language: str | None = None,
        n_predict: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        repeat_penalty: float | None = None,
        repeat_last_n: int | None = None,
        callback: Callable[..., Any] | None = None,
        debug: bool = False,
        *,
        code_tag_format: str = "markdown",
        max_size: int | None = None,
        **kwargs: Any,
    ) -> str | None:
        """The content of the one code block the model answers, or ``None`` (see the module)."""
        options = _options(n_predict or max_size, temperature, top_k, top_p, repeat_penalty, repeat_last_n,
                           callback, kwargs)
        system = "\n\n".join(p for p in (
            system_prompt or "Act as a code generation assistant that generates code from user prompt.",
            _fence_instructions(template, language, code_tag_format, several=False),
        ) if p)
        answer = self.generate_text(prompt, images=images, system_prompt=system, **options)
        if not isinstance(answer, str):
            return None
        blocks = extract_code_blocks(answer, code_tag_format)
        if not blocks:
            return None
        block = blocks[-1]
        code = str(block["content"])
        for _ in range(CONTINUATIONS):
            if block["is_complete"]:
                break
            # The last line may be cut in the middle: drop it and ask for the rest from there.
            code = "\n".join(code.split("\n")[:-1])
            more = self.generate_text(
                f"{prompt}\n\nHere is the code so far:\n```{language or ''}\n{code}\n```\n"
                "Continue the code from its last line, in a code block, without repeating it.",
                system_prompt=system, **options,
            )
            found = extract_code_blocks(more, code_tag_format, strip=False) if isinstance(more, str) else []
            if not found:
                break
            block = found[-1]
            code += "\n" + block["content"]
        return code

    def generate_codes(
        self,
        prompt: str,
        images: Sequence[Any] | None = None,
        system_prompt: str | None = None,
        n_predict: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        repeat_penalty: float | None = None,
        repeat_last_n: int | None = None,
        callback: Callable[..., Any] | None = None,
        debug: bool = False,
        *,
        template: str | None = None,
        language: str | None = None,
        code_tag_format: str = "markdown",
        max_size: int | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """Every code block of the answer, one per file (see the module); ``[]`` when none or on failure."""
        options = _options(n_predict or max_size, temperature, top_k, top_p, repeat_penalty, repeat_last_n,
                           callback, kwargs)
        system = "\n\n".join((
            system_prompt or "Act as a code generation assistant that generates code from user prompt.",
            _fence_instructions(template, language, code_tag_format, several=True),
        ))
        answer = self.generate_text(prompt, images=images, system_prompt=system, **options)
        if not isinstance(answer, str):
            return []
        return [{**b, "language": b["type"]} for b in extract_code_blocks(answer, code_tag_format)]

    def yes_no(self, question: str, context: str = "", *extras: Any, **kwargs: Any) -> Any:
        """``True`` or ``False`` (``{"answer", "explanation"}`` with ``return_explanation=True``)."""
        given = _question_arguments(extras, kwargs)
        schema = {
            "type": "object",
            "properties": {"answer": {"type": "boolean"}, "explanation": {"type": "string"}},
            "required": ["answer", "explanation"],
        }
        prompt = "Answer the question with true (yes) or false (no), and explain briefly."
        if context:
            prompt += f"\n\nContext:\n{context}"
        prompt += f"\n\nQuestion: {question}"
        data = self._ask_json(prompt, schema, given)
        explain = given["return_explanation"]
        if not isinstance(data, dict):
            return {"answer": False, "explanation": "Failed"} if explain else False
        answer = bool(data.get("answer"))
        return {"answer": answer, "explanation": str(data.get("explanation", ""))} if explain else answer

    def multichoice_question(
        self, question: str, possible_answers: Sequence[Any], context: str = "",
        *extras: Any, **kwargs: Any,
    ) -> Any:
        """The index of the best of ``possible_answers``, ``-1`` when none (``{"index", "explanation"}``)."""
        given = _question_arguments(extras, kwargs)
        choices = "\n".join(f"{i}. {answer}" for i, answer in enumerate(possible_answers))
        schema = {
            "type": "object",
            "properties": {
                "index": {"type": "integer", "minimum": 0, "maximum": max(len(possible_answers) - 1, 0)},
                "explanation": {"type": "string"},
            },
            "required": ["index", "explanation"],
        }
        prompt = "Answer the multiple-choice question with the index of the best answer."
        if context:
            prompt += f"\n\nContext:\n{context}"
        prompt += f"\n\nQuestion:\n{question}\n\nPossible answers:\n{choices}"
        data = self._ask_json(prompt, schema, given)
        index = data.get("index") if isinstance(data, dict) else None
        if not isinstance(index, int) or not 0 <= index < len(possible_answers):
            index = -1
        if given["return_explanation"]:
            explanation = str(data.get("explanation", "")) if isinstance(data, dict) else "Failed"
            return {"index": index, "explanation": explanation}
        return index

    def multichoice_ranking(
        self, question: str, possible_answers: Sequence[Any], context: str = "", *extras: Any, **kwargs: Any,
    ) -> Any:
        """The answers' indices from best to worst, ``[]`` on failure (1.x's return values).

        With ``return_explanation=True``: ``{"ranking": [...], "explanation": ...}``.
        """
        given = _question_arguments(extras, kwargs)
        count = len(possible_answers)
        choices = "\n".join(f"{i}. {answer}" for i, answer in enumerate(possible_answers))
        schema = {
            "type": "object",
            "properties": {
                "ranking": {"type": "array", "minItems": count, "maxItems": count,
                            "items": {"type": "integer", "minimum": 0, "maximum": max(count - 1, 0)}},
                "explanation": {"type": "string"},
            },
            "required": ["ranking", "explanation"],
        }
        prompt = "Rank the possible answers from best to worst: give the list of their indices."
        if context:
            prompt += f"\n\nContext:\n{context}"
        prompt += f"\n\nQuestion:\n{question}\n\nPossible answers:\n{choices}"
        data = self._ask_json(prompt, schema, given)
        ranking = data.get("ranking") if isinstance(data, dict) else None
        if not isinstance(ranking, list) or sorted(ranking) != list(range(count)):
            ranking = []  # not a ranking of every answer once
        if given["return_explanation"]:
            explanation = str(data.get("explanation", "")) if isinstance(data, dict) else "Failed"
            return {"ranking": ranking, "explanation": explanation}
        return ranking

    def _ask_json(self, prompt: str, schema: dict[str, Any], given: dict[str, Any]) -> Any:
        import warnings

        from ..errors import LollmsMagicsWarning

        options = {k: v for k, v in given.items()
                   if k not in ("return_explanation", "system_prompt", "images")}
        if options.get("n_predict") is None:
            options.pop("n_predict", None)
        with warnings.catch_warnings():
            # The failure is the return value (False, -1), as in lollms-client.
            warnings.simplefilter("ignore", LollmsMagicsWarning)
            return self.generate_structured_content(
                prompt, given.get("images"), schema, given.get("system_prompt") or None, **options,
            )


def _options(n_predict: int | None, temperature: float | None, top_k: int | None, top_p: float | None,
             repeat_penalty: float | None, repeat_last_n: int | None, callback: Callable[..., Any] | None,
             kwargs: dict[str, Any]) -> dict[str, Any]:
    options = {
        "n_predict": n_predict, "temperature": temperature, "top_k": top_k, "top_p": top_p,
        "repeat_penalty": repeat_penalty, "repeat_last_n": repeat_last_n, "streaming_callback": callback,
    }
    options.update({k: v for k, v in kwargs.items() if k not in _NOT_OPTIONS})
    return options


def _question_arguments(extras: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``yes_no`` / ``multichoice_question``'s arguments after the context, in either era's order."""
    given: dict[str, Any] = {}
    conditioning = kwargs.pop("conditionning", None) or kwargs.pop("conditioning", None)
    for name in ("system_prompt", "return_explanation", "images", "callback", "max_answer_length"):
        if name in kwargs:
            given[name] = kwargs.pop(name)
    # bool before int: True is an int too.
    _read_extras(extras, {bool: "return_explanation", int: "max_answer_length", str: "system_prompt",
                          list: "images", tuple: "images"}, given)
    if conditioning and not given.get("system_prompt"):
        given["system_prompt"] = conditioning
    given.setdefault("return_explanation", False)
    callback = given.pop("callback", None)
    if callback is not None:
        given["callback"] = callback
    given["n_predict"] = given.pop("max_answer_length", None)
    given.update(kwargs)
    return given
