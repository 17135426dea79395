"""Generation with lollms-client's spelling: ``generate_text``, discussions, structured content.

``generate_text(prompt)`` is :meth:`Session.ask` with the conversation left
out. ``generate_text(transcript, split=True)`` reads lollms's discussion
markup, the text lollms-client's helpers and discussions write::

    !@>system: You are terse.
    !@>user: Name a moon of Mars.
    !@>assistant: Phobos.
    !@>user: And the other one?
    !@>assistant:

into chat messages (system, user, assistant, user), as lollms-client's
bindings do, and sends them as messages: the server applies the model's own
chat template instead of reading the markers as text. The headers
recognised are ``!@>system:``, ``user_keyword`` and ``ai_keyword``
(``"!@>user:"``, ``"!@>assistant:"``), and the client's own
``user_full_header`` / ``ai_full_header`` (``!@>{user_name}:``,
``!@>{ai_name}:``, which lollms-client 1.x's discussions write with a line
break after the colon). Text before the first header is a system message;
empty messages are dropped, later system messages become user messages and
consecutive messages of one role are joined, as lollms-client's
``clean_and_alternate_messages`` does. ``images`` join the last user message.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import LollmsMagicsError, LollmsMagicsWarning
from ..images import encode_image
from ..options import validate_options
from .callbacks import Callback, failure, read_answer
from .room import ClientRoom

if TYPE_CHECKING:
    from ..response import Response

__all__ = ["IGNORED_GENERATE", "Generating", "split_discussion"]

# Keyword arguments of generate_text that have no use here (n_threads: the server decides;
# auto_continue_on_truncation, lollms-client 1.9's: a structured answer cut short is repaired anyway).
IGNORED_GENERATE = frozenset({
    "auto_continue_on_truncation", "n_threads", "split", "user_keyword", "ai_keyword", "think",
    "reasoning_effort", "reasoning_summary", "videos",
})
SYSTEM_KEYWORD = "!@>system:"


def split_discussion(
    text: str,
    system_keyword: str = SYSTEM_KEYWORD,
    user_keyword: str = "!@>user:",
    ai_keyword: str = "!@>assistant:",
    *,
    more: Sequence[tuple[str, str]] = (),
) -> list[dict[str, str]]:
    """The chat messages of a lollms discussion transcript (see the module docstring).

    ``more`` adds ``(header, role)`` pairs (the client's ``!@>{user_name}:``).
    The messages are cleaned as lollms-client sends them: one leading system
    message, no empty message, roles alternating.
    """
    headers = {system_keyword: "system", user_keyword: "user", ai_keyword: "assistant"}
    for header, role in more:
        headers.setdefault(header.strip(), role)
    # Longest first, so "!@>user_bis:" is not read as "!@>user" followed by text.
    pattern = re.compile("|".join(re.escape(h) for h in sorted(headers, key=len, reverse=True) if h))
    raw: list[tuple[str, str]] = []
    matches = list(pattern.finditer(text))
    head = text[: matches[0].start()] if matches else text
    if head.strip():
        raw.append(("system", head.strip()))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        raw.append((headers[match.group(0)], text[match.end():end].strip()))
    return _alternate([(role, content) for role, content in raw if content])


def _alternate(messages: list[tuple[str, str]]) -> list[dict[str, str]]:
    """One leading system message, later ones as user messages, consecutive roles joined."""
    out: list[dict[str, str]] = []
    for index, (role, content) in enumerate(messages):
        leading = all(r == "system" for r, _ in messages[: index + 1])
        if role == "system" and not leading:
            role = "user"
        if out and out[-1]["role"] == role:
            out[-1]["content"] += "\n\n" + content
        else:
            out.append({"role": role, "content": content})
    return out


class Generating(ClientRoom):
    """The generation calls of :class:`~lollms_magics.compat.client.LollmsClient`."""

    user_name: str = "user"
    ai_name: str = "assistant"
    start_header_id_template = "!@>"
    end_header_id_template = ": "
    system_message_template = "system"

    # -- lollms's prompt headers (0.x and 1.x) -------------------------------------

    @property
    def system_full_header(self) -> str:
        """``"!@>system: "``."""
        return f"{self.start_header_id_template}{self.system_message_template}{self.end_header_id_template}"

    @property
    def user_full_header(self) -> str:
        """``"!@>{user_name}: "``."""
        return f"{self.start_header_id_template}{self.user_name}{self.end_header_id_template}"

    @property
    def ai_full_header(self) -> str:
        """``"!@>{ai_name}: "``."""
        return f"{self.start_header_id_template}{self.ai_name}{self.end_header_id_template}"

    def system_custom_header(self, name: str) -> str:
        """``"!@>{name}: "`` (lollms-client 0.x)."""
        return f"{self.start_header_id_template}{name}{self.end_header_id_template}"

    user_custom_header = ai_custom_header = system_custom_header

    def split_discussion(
        self, lollms_prompt_string: str, system_keyword: str = SYSTEM_KEYWORD,
        user_keyword: str = "!@>user:", ai_keyword: str = "!@>assistant:",
    ) -> list[dict[str, str]]:
        """The chat messages of a discussion transcript (lollms-client 1.x's binding method)."""
        return split_discussion(lollms_prompt_string, system_keyword, user_keyword, ai_keyword,
                                more=self._own_headers())

    def _own_headers(self) -> list[tuple[str, str]]:
        return [(self.user_full_header, "user"), (self.ai_full_header, "assistant")]

    # -- text -------------------------------------------------------------------------

    def generate_text(
        self,
        prompt: str,
        images: Sequence[Any] | None = None,
        system_prompt: str = "",
        n_predict: int | None = None,
        stream: bool | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        repeat_penalty: float | None = None,
        repeat_last_n: int | None = None,
        seed: int | None = None,
        streaming_callback: Callback | None = None,
        split: bool = False,
        user_keyword: str = "!@>user:",
        ai_keyword: str = "!@>assistant:",
        **kwargs: Any,
    ) -> str | dict[str, Any]:
        """The generated text, or ``{"status": False, "error": "<one line>"}`` when it failed.

        ``images`` are file paths (or bytes, PIL images, data URLs), sent on
        every backend that reads pictures. With a ``streaming_callback``
        (this call's, else the constructor's) the answer streams, unless
        ``stream=False``: ``callback(chunk, MSG_TYPE.MSG_TYPE_CHUNK)`` per
        piece; returning ``False`` stops and the text so far is returned;
        ``None`` continues (see :mod:`lollms_magics.compat.callbacks`); a
        failure reaches it as ``MSG_TYPE_EXCEPTION`` before the error dict is
        returned. ``split=True`` reads ``prompt`` as a lollms discussion (see
        :mod:`lollms_magics.compat.generation`). The conversation is not used
        or kept: each call stands alone.
        """
        callback, stream = self._streaming(streaming_callback, stream)
        options = _generation_options(
            n_predict, temperature, top_k, top_p, repeat_penalty, repeat_last_n, seed, kwargs
        )
        try:
            if split:
                messages = split_discussion(prompt, SYSTEM_KEYWORD, user_keyword, ai_keyword,
                                            more=self._own_headers())
                if system_prompt:
                    messages = _alternate([("system", system_prompt)]
                                          + [(m["role"], m["content"]) for m in messages])
                response = self._ask_messages(messages, images, bool(stream), options)
            else:
                response = self.ask(prompt, system=system_prompt or None, images=list(images or ()) or None,
                                    stream=bool(stream), history=False, **options)
        except LollmsMagicsError as exc:
            return failure(exc, callback, self.keys.redact)
        return read_answer(response, callback if stream else None, self.keys.redact)

    def generate(self, *args: Any, **kwargs: Any) -> str | dict[str, Any]:
        """lollms-client 1.x's other name of :meth:`generate_text`."""
        return self.generate_text(*args, **kwargs)

    def generate_from_messages(
        self,
        messages: Sequence[dict[str, Any]],
        n_predict: int | None = None,
        stream: bool | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        repeat_penalty: float | None = None,
        repeat_last_n: int | None = None,
        seed: int | None = None,
        streaming_callback: Callback | None = None,
        **kwargs: Any,
    ) -> str | dict[str, Any]:
        """lollms-client 1.x: the answer to chat ``messages`` (``{"role", "content"}``), or an error dict.

        A message's ``"images"`` go with it; the text, the streaming and the
        failures are as for :meth:`generate_text`.
        """
        callback, stream = self._streaming(streaming_callback, stream)
        options = _generation_options(
            n_predict, temperature, top_k, top_p, repeat_penalty, repeat_last_n, seed, kwargs
        )
        try:
            response = self._ask_messages([dict(m) for m in messages], None, bool(stream), options)
        except LollmsMagicsError as exc:
            return failure(exc, callback, self.keys.redact)
        return read_answer(response, callback if stream else None, self.keys.redact)

    def _streaming(self, callback: Callback | None, stream: bool | None) -> tuple[Callback | None, bool]:
        """This call's callback (else the constructor's), and whether the answer streams."""
        callback = callback or self.default_streaming_callback
        if stream is None:
            stream = bool(self.default_stream) or callback is not None
        return callback, stream

    def _ask_messages(
        self, messages: list[dict[str, Any]], images: Sequence[Any] | None, stream: bool,
        options: dict[str, Any],
    ) -> Response:
        """Send chat ``messages`` to the client's backend, kept by the session as :meth:`ask` keeps a prompt.

        The same rules as a prompt: a message holding a known key is refused,
        the options are checked, and the request is what ``%lollms sent``
        shows and ``%lollms usage`` counts.
        """
        from ..core.sent import SentRequest

        for message in messages:
            if isinstance(message.get("content"), str):
                self.keys.refuse(message["content"], f"the {message.get('role', 'user')} message")
        checked = {**self.options, **validate_options(options)}
        encoded = [encode_image(image) for image in images or ()]
        if encoded:
            users = [m for m in messages if m.get("role") == "user"]
            target_message = users[-1] if users else messages[-1]
            target_message["images"] = [*target_message.get("images", ()), *encoded]
        target = self.target()
        chosen = self.binding(target)
        response = chosen.generate(messages, stream=stream, **checked)
        self.last = target
        self.last_request = SentRequest(
            target.name, response.model, getattr(chosen, "host", None) or None, messages,
            dict(response.options), stream, list(response.ignored_options),
        )
        response.on_finish(lambda r: self.usage.record(r, target.name))
        return response

    # -- structured content -------------------------------------------------------------

    def generate_structured_content(
        self,
        prompt: str,
        images: Sequence[Any] | None = None,
        schema: Any = None,
        system_prompt: str | None = None,
        max_retries: int = 1,
        use_override: bool = False,
        *,
        template: Any = None,
        output_format: Any = None,
        extra_system_prompt: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """The answer as data (a dict, or what the schema describes), or ``None`` when it failed.

        lollms-client's spelling: ``schema`` is a JSON Schema (dict or JSON
        text; a dict of properties alone is wrapped into an object), or the
        0.x ``template`` / ``output_format``, an example of the answer (see
        :mod:`lollms_magics.compat.structured`); a dataclass, a pydantic model
        or a short form ``"name: str, age: int"`` work too. The arguments are
        1.7's order, ``(prompt, images, schema, ...)``; a schema given second,
        as 1.9 orders them (``(prompt, schema, images, ...)``), is read as the
        schema. ``system_prompt`` (and ``extra_system_prompt``) go before the
        schema's instructions in the system message. ``kwargs`` are
        generation options (``n_predict``, ``temperature``...) and
        ``callback`` / ``streaming_callback`` (called as for
        :meth:`generate_text`, a failure as ``MSG_TYPE_EXCEPTION``).

        The backend is constrained to the schema where it can be, the answer
        checked, and asked again once when it does not fit; ``max_retries``
        and ``use_override`` are accepted, but there is always that one repair
        and the schema's instructions are always added. Unlike lollms-client,
        an answer that still does not fit gives ``None`` (with a
        :class:`~lollms_magics.errors.LollmsMagicsWarning` saying why), never
        data that does not follow the schema. A schema that is not one raises
        ``ValueError`` (``TypeError`` for a template that is not JSON), as in lollms-client.
        """
        from ..core.schemas import as_schema
        from .structured import course_order, course_schema

        images, schema = course_order(images, schema)
        callback = kwargs.pop("callback", None) or kwargs.pop("streaming_callback", None)
        options = {k: v for k, v in kwargs.items() if k not in IGNORED_GENERATE and k != "debug"}
        # Read first, outside the try: lollms-client raises for a schema it cannot read.
        spec = as_schema(course_schema(schema, template if template is not None else output_format))
        system = "\n\n".join(p for p in (system_prompt, extra_system_prompt) if p) or None
        try:
            response = self.ask(prompt, system=system, images=list(images or ()) or None,
                                stream=callback is not None, history=False, schema=spec, **options)
        except LollmsMagicsError as exc:
            return _structured_failure(failure(exc, callback, self.keys.redact))
        answer = read_answer(response, callback, self.keys.redact)
        if isinstance(answer, dict):  # the error dict of a failure
            return _structured_failure(answer)
        return getattr(response, "data", None)

    def generate_structured_content_pydantic(
        self, prompt: str, pydantic_model: Any, images: Sequence[Any] | None = None,
        system_prompt: str | None = None, max_retries: int = 1, use_override: bool = False, **kwargs: Any,
    ) -> Any:
        """An instance of ``pydantic_model`` (a class, or the class of an instance) from the answer, or None.

        lollms-client's spelling and return values; the answer is asked for
        and checked as :meth:`generate_structured_content` does, with the
        model's JSON Schema. Raises ``TypeError`` when ``pydantic_model`` is
        not a pydantic model, as lollms-client does.
        """
        from .structured import pydantic_class

        model = pydantic_class(pydantic_model)
        data = self.generate_structured_content(prompt, images, model, system_prompt, max_retries,
                                                use_override, **kwargs)
        return None if data is None else model.model_validate(data)


def _structured_failure(error: dict[str, Any]) -> None:
    """lollms-client's failure value for structured content, ``None``, with the reason as a warning."""
    warnings.warn(f"generate_structured_content failed: {error['error']}", LollmsMagicsWarning, stacklevel=3)


def _generation_options(
    n_predict: int | None, temperature: float | None, top_k: int | None, top_p: float | None,
    repeat_penalty: float | None, repeat_last_n: int | None, seed: int | None, kwargs: dict[str, Any],
) -> dict[str, Any]:
    """lollms-client's generation arguments as the session's options (its unused ones left out)."""
    options: dict[str, Any] = {
        "n_predict": n_predict, "temperature": temperature, "top_k": top_k, "top_p": top_p,
        "repeat_penalty": repeat_penalty, "repeat_last_n": repeat_last_n, "seed": seed,
    }
    options.update({k: v for k, v in kwargs.items() if k not in IGNORED_GENERATE})
    return options
