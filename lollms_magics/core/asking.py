"""Asking: how a prompt becomes the request a backend receives (a room of :class:`Session`).

The prompt's ``{name}`` references are filled and checked for keys, the
documents (``docs=``) and cells just run (``context=``) are put before it,
the conversation is fitted to the window, and the answer joins the history
once complete. Kept apart from :mod:`.session` so each file holds one role.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptionError, ServerUnreachableError
from ..images import ImageInput, encode_image
from ..options import validate_options
from .history import Conversation, Exchange, answer_reserve, counter_for, history_window, keep_steps
from .interpolate import fill
from .keys import KeyStore
from .sent import SentRequest
from .target import Target
from .usage import UsageLog

if TYPE_CHECKING:
    from ..bindings.base import Binding
    from ..response import Response
    from ..summaries.document import Document
    from .docs import DocsIndex

_ASKED = itertools.count(1)  # numbers the exchanges of callers that give no key


class Asking:
    """The asking half of :class:`~lollms_magics.core.session.Session`."""

    # Set by Session.__init__; declared here for the type checker.
    conversation: Conversation
    keys: KeyStore
    context_size: int
    max_history: int
    fill_limit: int
    options: dict[str, Any]
    last: Target | None
    last_request: SentRequest | None
    usage: UsageLog
    docs: DocsIndex
    _auto: Target | None

    if TYPE_CHECKING:

        def target(
            self, binding: str | None = None, model: str | None = None, host: str | None = None
        ) -> Target: ...

        def binding(self, target: Target | None = None) -> Binding: ...

        def load_document(self, source: Any) -> Document: ...


    def ask(
        self,
        prompt: str,
        *,
        binding: str | None = None,
        model: str | None = None,
        host: str | None = None,
        system: str | None = None,
        images: Sequence[ImageInput] | None = None,
        stream: bool = True,
        namespace: Mapping[str, Any] | None = None,
        key: str | None = None,
        history: bool = True,
        new: bool = False,
        schema: Any = None,
        docs: Any = None,
        context: Any = None,
        tools: Any = None,
        approve: Any = None,
        max_rounds: int = 4,
        on_tool: Any = None,
        **options: Any,
    ) -> Response:
        """Send ``prompt`` after the conversation so far; returns the streaming :class:`Response`.

        ``namespace`` fills ``{name}`` references from those variables (see
        :mod:`lollms_magics.core.interpolate`). ``key`` identifies the caller
        (a notebook cell): asking again with the same key replaces that
        exchange; without one, each call adds an exchange. ``history=False``
        sends the prompt alone; ``new=True`` starts a new conversation. ``options`` override the session's
        defaults for this prompt. The exchange joins the conversation once
        the answer is complete.

        ``schema`` asks for the answer as data: a JSON Schema dict, a pydantic
        model, a dataclass, a TypedDict or a short form such as ``"name: str,
        year: int"`` (see :mod:`lollms_magics.core.structured`). The response
        then has ``.data``, the parsed and checked value; an answer that does
        not fit even when asked again raises
        :class:`~lollms_magics.errors.StructuredOutputError` as it is read.

        ``docs`` answers from documents: a source as :meth:`summarize` takes
        (a file, folder, glob, URL, text, DataFrame), whose chunks best
        matching the prompt are sent with labels the answer cites (see
        :mod:`lollms_magics.core.docs`); ``response.passages`` lists them.

        ``context`` puts the cells just run before the prompt: a number N (the
        running kernel's last N executed cells, their code and value), a list
        of :class:`~lollms_magics.core.context.Cell` or ``(code, result)``
        pairs, or text; it is cut to fit and checked for keys like the prompt
        (see :mod:`lollms_magics.core.context`).

        ``tools`` offers functions to the model (``[f, g]``, described from
        their signatures and docstrings); the calls it asks for run here,
        checked, with ``approve`` (``"yes"``, a function ``approve(call) ->
        bool``, or None: only ``@tool(safe=True)`` functions run) for at most
        ``max_rounds`` rounds; ``on_tool(event)`` hears each call start and
        end, and ``response.tool_runs`` lists them (see :mod:`lollms_magics.core.tools`).
        """
        checked = {**self.options, **validate_options(options)}
        spec = None
        if tools and schema is not None:
            raise InvalidOptionError("tools and schema cannot be asked together: ask for one, then the other")
        if schema is not None:  # a bad schema fails here, before any request
            from .structured import as_schema, instructions

            spec = as_schema(schema)
        prompt, notes = self._prepared(prompt, namespace)
        if system:
            system, system_notes = self._prepared(system, namespace)
            notes += system_notes
        encoded = [encode_image(image) for image in images or ()]
        target = self.target(binding, model, host)
        chosen = self.binding(target)
        if new:
            self.conversation.clear()
        # Without a key (a Python loop, LollmsClient), every call is a new
        # exchange, even when its prompt repeats ("Continue."); only a caller
        # that names itself (a notebook cell) replaces its earlier exchange.
        key = key or f"ask:{next(_ASKED)}"
        sent_system = system if spec is None else instructions(spec, system)  # as counted for the window
        sent_prompt, passages = prompt, None
        if docs is not None:
            from .docs import prompt_with_docs

            sent_prompt, passages = prompt_with_docs(self, chosen, prompt, sent_system, checked, docs)
        if context is not None:
            sent_prompt, cut = self._with_context(chosen, sent_prompt, sent_system, checked, context)
            notes += cut
        # Earlier tool steps go as real messages only to a request that offers tools (core/history.py).
        with_tools = bool(tools) and chosen._can_call_tools()
        messages, notes = self._messages(
            chosen, target, key, sent_prompt, sent_system, checked, history, notes, with_tools
        )
        if encoded:
            messages[-1]["images"] = encoded
        try:
            if tools:  # the tool loop (core/tools/loop.py) sends every round itself
                from .tools import ask_with_tools

                response = ask_with_tools(
                    chosen, messages, tools, system=system, stream=stream, keys=self.keys,
                    approve=approve, max_rounds=max_rounds, on_tool=on_tool, **checked,
                )
            elif spec is None:
                response = chosen.generate(messages, system=system, stream=stream, **checked)
            else:
                from .structured import ask_structured

                response = ask_structured(chosen, messages, spec, system=system, stream=stream, **checked)
        except ServerUnreachableError:
            self._forget_auto(target)
            raise
        response.notes.extend(notes)
        if passages is not None:
            response.passages = passages  # type: ignore[attr-defined]  # shown under the answer
        self.last = target
        self.last_request = SentRequest(
            target.name, response.model, getattr(chosen, "host", None) or None,
            ([{"role": "system", "content": sent_system}] if sent_system else []) + messages,
            dict(response.options), stream, list(response.ignored_options),
            spec.wire if spec is not None else None,
        )
        # A fallback that answered is counted and remembered as itself (bindings.chain).
        response.on_finish(lambda r: self.usage.record(r, r.binding if r.fallback else target.name))
        if history:
            response.on_finish(lambda r: self._record(r, key, prompt, encoded, target))
        response.on_finish(lambda r: self._after(r, target))
        return response

    def _with_context(
        self, chosen: Binding, prompt: str, system: str | None, options: dict[str, Any], context: Any
    ) -> tuple[str, list[str]]:
        """``prompt`` after the cells of ``context`` that fit half of what a prompt may fill."""
        from .context import context_prompt

        window = history_window(self.context_size, options.get("ctx_size"), chosen.context_size)
        count = counter_for(chosen)
        room = window - answer_reserve(window, options.get("n_predict")) - count(prompt) - count(system or "")
        return context_prompt(prompt, context, max(room // 2, 0), count, self.keys.refuse)

    def _prepared(
        self, text: str, namespace: Mapping[str, Any] | None, what: str = "this prompt"
    ) -> tuple[str, list[str]]:
        """``text`` with its ``{name}`` references filled, and the notes; refused if it holds a key.

        ``what`` names the text in the refusal (``"the image prompt"``).
        """
        notes: list[str] = []
        written = text
        if namespace is not None:
            filled = fill(text, namespace, limit=self.fill_limit)
            text, notes = filled.text, list(filled.notes)
        if self.keys.holds_secret(text):
            if namespace is not None and not self.keys.holds_secret(written):
                what = self.keys.reference_holding_key(written, namespace) or what
            self.keys.refuse(text, what)
        return text, notes

    def _messages(
        self,
        chosen: Binding,
        target: Target,
        key: str,
        prompt: str,
        system: str | None,
        options: dict[str, Any],
        history: bool,
        notes: list[str],
        tools: bool = False,
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The messages to send, trimmed to the window, and the notes on what was cut.

        ``tools``: earlier exchanges' tool steps go as real messages, else as notes in their answers.
        """
        if not history:
            return [{"role": "user", "content": prompt}], notes
        window = history_window(self.context_size, options.get("ctx_size"), chosen.context_size)
        n_predict = options.get("n_predict")
        if n_predict is not None and n_predict >= window:
            notes.append(
                f"-n {n_predict} cannot fit in the {window}-token context window; "
                "the answer may stop early (raise --ctx-size or lower -n)"
            )
        reserve = answer_reserve(window, n_predict)
        count = counter_for(chosen)
        fitted = self.conversation.fit(
            key, prompt, window=window, reserve=reserve, system=system, count=count, tools=tools
        )
        if fitted.dropped:
            notes.append(
                f"history cut: {fitted.dropped} earlier exchange(s) left out to fit "
                f"the {window}-token window"
            )
        previous = self.conversation.context(key)
        if fitted.kept and previous and not _same_backend(previous[-1].backend, target):
            notes.append(
                f"continuing the conversation held with {previous[-1].backend} "
                "(--new starts a new one)"
            )
        return fitted.messages, notes

    def _record(
        self, response: Response, key: str, prompt: str, images: list[Any], target: Target
    ) -> None:
        if response.done:
            name = response.binding if response.fallback else target.name
            backend = f"{name}:{response.model}" if response.model else name
            keys = self.keys
            answer = keys.redact(response.text) if keys.holds_secret(response.text) else response.text
            exchange = Exchange(key, prompt, answer, images, backend)
            steps = getattr(response, "tool_steps", None)  # core.tools.ToolSteps, after a tool loop
            if steps is not None and steps.messages:
                exchange.steps = keep_steps(steps.messages, keys)
                exchange.reply = keys.redact(steps.reply) if keys.holds_secret(steps.reply) else steps.reply
            self.conversation.record(exchange, keep=self.max_history)

    def _after(self, response: Response, target: Target) -> None:
        if isinstance(response.error, ServerUnreachableError):
            self._forget_auto(target)

    def _forget_auto(self, target: Target) -> None:
        # The automatically chosen server went away: choose again next time.
        if self._auto is not None and target.name == self._auto.name:
            self._auto = None


def _same_backend(backend: str, target: Target) -> bool:
    """Whether an exchange's ``binding:model`` is what ``target`` names (its model may be unknown yet)."""
    name, _, model = backend.partition(":")
    return name == target.name and (target.model is None or model == target.model)
