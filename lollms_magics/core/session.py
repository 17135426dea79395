"""The Session: the state a user builds up, without IPython.

A :class:`Session` holds the chosen backend (or the automatic choice), the
conversation, the keys typed in, and the default options. The magics, the
panels and :class:`~lollms_magics.LollmsClient` are all spellings of it::

    from lollms_magics import Session

    s = Session("ollama", model="llama3.2", temperature=0.2)
    answer = s.ask("Name three moons of Jupiter.")
    for piece in answer:
        print(piece, end="")
    s.ask("And of Saturn?").text   # the conversation goes on

The kernel has one default session, :func:`default_session`, which the
magics use; any number of others can be made.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import (
    InvalidOptionError,
    ServerUnreachableError,
)
from ..images import ImageInput, encode_image
from ..options import validate_options
from .docs import DocsIndex
from .history import Conversation, Exchange, answer_reserve, counter_for, history_window
from .imaging import ImageChoice
from .interpolate import DEFAULT_LIMIT, fill
from .keys import KeyStore, declared_key_variables
from .sent import SentRequest
from .status import Status, safe_host
from .target import Target
from .usage import UsageLog

if TYPE_CHECKING:
    from ..bindings.base import Binding
    from ..response import Response
    from ..schema import ModelInfo
    from ..summaries.document import Document
    from ..summaries.result import Summary
    from ..tti.base import ImageBinding, ImageResult
    from .mapping import MapProgress, MapResult

__all__ = ["Session", "Status", "Target", "default_session", "safe_host", "set_default_session", "summarize"]

_ASKED = itertools.count(1)  # numbers the exchanges of callers that give no key
ENV_BINDING, ENV_MODEL, ENV_HOST = "LOLLMS_MAGICS_BINDING", "LOLLMS_MAGICS_MODEL", "LOLLMS_MAGICS_HOST"


class Session:
    """A conversation with a backend, its keys and its default options.

    Parameters
    ----------
    binding, model, host:
        The default backend; ``None`` or ``"auto"`` chooses one automatically
        on first need (see :mod:`lollms_magics.core.auto`).
    api_key:
        A key for ``binding``, kept in memory only.
    context_size:
        Tokens the conversation and the prompt may fill, at most (a backend
        with a smaller known window trims more).
    max_history:
        Exchanges kept in the conversation.
    options:
        Default generation options (``temperature=0.2``...), validated now.
    """

    def __init__(
        self,
        binding: str | None = None,
        model: str | None = None,
        host: str | None = None,
        *,
        api_key: str | None = None,
        context_size: int = 4096,
        max_history: int = 50,
        auto_timeout: float = 0.5,
        fill_limit: int = DEFAULT_LIMIT,
        **options: Any,
    ) -> None:
        self.conversation = Conversation()
        self.keys = KeyStore(declared_key_variables)
        self.context_size = context_size
        self.max_history = max_history
        self.auto_timeout = auto_timeout
        self.fill_limit = fill_limit
        self.options: dict[str, Any] = validate_options(options)
        self.binding_config: dict[str, Any] = {}  # extra settings for new bindings (timeouts...)
        self._chosen: Target | None = None
        self._auto: Target | None = None
        self.last: Target | None = None  # the backend the last prompt went to
        self.docs = DocsIndex()  # the indexes of the documents asked about (docs=), kept across questions
        self.last_request: SentRequest | None = None  # what it was sent (%lollms sent)
        self.usage = UsageLog()  # tokens, calls and time per backend and model (%lollms usage)
        self._bindings: dict[tuple[Any, ...], Binding] = {}
        self._images = ImageChoice(self.keys, lambda: self.auto_timeout)
        if binding and binding.lower() != "auto":
            self.use(binding, model, host, api_key=api_key)
        elif api_key:
            raise InvalidOptionError("api_key needs a binding to belong to")

    # -- choosing the backend ------------------------------------------------

    def use(
        self,
        binding: str = "auto",
        model: str | None = None,
        host: str | None = None,
        *,
        api_key: str | None = None,
        reason: str = "set with Session.use",
    ) -> Target | None:
        """Make ``binding`` (and ``model``, ``host``) the default; ``"auto"`` returns to the automatic choice.

        ``binding`` may carry its model: ``"ollama:llama3.2:1b"``. ``reason``
        is what :meth:`status` says of the choice.
        """
        from ..bindings import binding_class

        if binding.lower() == "auto":
            self._chosen = None
            self._auto = None  # probe again
            return None
        name, _, inline_model = binding.partition(":")
        binding_class(name)  # UnknownBindingError at once for a typo
        if api_key:
            self.keys.set(name, api_key)
            self.forget_bindings(name)
        self._chosen = Target(name, model or inline_model or None, host, reason)
        return self._chosen

    def configured(self) -> Target | None:
        """The default chosen with :meth:`use` or the environment, if any."""
        if self._chosen is not None:
            return self._chosen
        name = os.environ.get(ENV_BINDING, "").strip()
        if not name or name.lower() == "auto":
            return None
        return Target(
            name,
            os.environ.get(ENV_MODEL) or None,
            os.environ.get(ENV_HOST) or None,
            f"set by the environment variable {ENV_BINDING}",
        )

    def default_target(self) -> Target:
        """The session's default backend; makes the automatic choice on first need."""
        target = self.configured()
        if target is not None:
            return target
        if self._auto is None:
            from .auto import choose_binding

            choice = choose_binding(timeout=self.auto_timeout)
            self._auto = Target(
                choice.name, choice.model, choice.host, f"chosen automatically: {choice.reason}"
            )
        return self._auto

    def target(self, binding: str | None = None, model: str | None = None, host: str | None = None) -> Target:
        """Where a prompt goes: the given ``binding``/``model``/``host`` over the session's default."""
        if binding:
            name, _, inline_model = binding.partition(":")
            base = self.configured()
            if base is None or base.name != name:  # a default's model fits only its binding
                base = Target(name, inline_model or None, None, "chosen for this prompt")
            elif inline_model:
                base = Target(name, inline_model, base.host, base.reason)
        else:
            base = self.default_target()
        return Target(base.name, model or base.model, host or base.host, base.reason)

    def binding(self, target: Target | None = None) -> Binding:
        """The binding for ``target`` (default: the session's), made once per (name, host, model, key)."""
        from ..bindings import binding_class

        target = target or self.default_target()
        cls = binding_class(target.name)
        key = self.keys.get(target.name)
        env_key = os.environ.get(cls.key_env) if cls.key_env else None
        config = tuple(sorted(self.binding_config.items()))
        cache_key = (target.name, target.host, target.model, key or env_key, config)
        binding = self._bindings.get(cache_key)
        if binding is None:
            binding = cls(host=target.host, model=target.model, api_key=key, **self._config_for(cls))
            self._bindings[cache_key] = binding
        return binding

    def _config_for(self, cls: type[Binding]) -> dict[str, Any]:
        from ..bindings.http import HTTPBinding

        if issubclass(cls, HTTPBinding):
            return dict(self.binding_config)
        return {}

    def set_key(self, binding: str, key: str | None) -> None:
        """Keep ``key`` for ``binding`` in memory (never saved); None forgets it."""
        self.keys.set(binding, key)
        self.forget_bindings(binding)

    def forget_bindings(self, name: str) -> None:
        """Close and drop the bindings called ``name`` (after a key change)."""
        for cache_key in [k for k in self._bindings if k[0] == name]:
            self._bindings.pop(cache_key).close()

    def close(self) -> None:
        """Close every binding the session made (their HTTP connections)."""
        for binding in self._bindings.values():
            binding.close()
        self._bindings.clear()
        self.close_images()

    # -- asking -------------------------------------------------------------------

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
        """
        checked = {**self.options, **validate_options(options)}
        spec = None
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
        messages, notes = self._messages(
            chosen, target, key, sent_prompt, sent_system, checked, history, notes
        )
        if encoded:
            messages[-1]["images"] = encoded
        try:
            if spec is None:
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
        response.on_finish(lambda r: self.usage.record(r, target.name))
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
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The messages to send, trimmed to the window, and the notes on what was cut."""
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
            key, prompt, window=window, reserve=reserve, system=system, count=count
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
            backend = f"{target.name}:{response.model}" if response.model else target.name
            exchange = Exchange(key, prompt, response.text, images, backend)
            self.conversation.record(exchange, keep=self.max_history)

    def _after(self, response: Response, target: Target) -> None:
        if isinstance(response.error, ServerUnreachableError):
            self._forget_auto(target)

    def _forget_auto(self, target: Target) -> None:
        # The automatically chosen server went away: choose again next time.
        if self._auto is not None and target.name == self._auto.name:
            self._auto = None

    # -- looking around -------------------------------------------------------------

    def models(self, binding: str | None = None, host: str | None = None) -> list[ModelInfo]:
        """The models of ``binding`` (default: the session's backend) at ``host``."""
        return self.binding(self.target(binding, None, host)).list_models()

    def history(self) -> list[Exchange]:
        """The exchanges of the conversation, oldest first."""
        return list(self.conversation.exchanges)

    def reset(self) -> None:
        """Start a new conversation."""
        self.conversation.clear()

    def status(self, check: bool = True) -> Status:
        """The backend used last (else the default), why, whether it answers, the key, the history.

        With ``check``, the server is asked for its models (quickly: a short
        timeout and no retry).
        """
        from .status import status_of

        return status_of(self, check)

    # -- pictures (text-to-image) -----------------------------------------------------
    # The image backend is kept apart from the text one (see core/imaging.py); keys
    # are shared by binding name.

    def use_image(
        self, binding: str = "auto", model: str | None = None, host: str | None = None,
        *, api_key: str | None = None, **config: Any,
    ) -> Target | None:
        """Make ``binding`` (``"a1111"``, ``"comfyui:sdxl.safetensors"``...) the image default.

        ``config`` holds binding settings kept for it (``client_id=``, ``workflow=``,
        ``read_timeout=``); ``"auto"`` returns to the automatic choice.
        """
        if api_key:
            self.set_key(binding.partition(":")[0], api_key)
        return self._images.use(binding, model, host, **config)

    @property
    def image_chosen(self) -> Target | None:
        """The image backend chosen with :meth:`use_image`, if any (nothing is probed)."""
        return self._images.chosen

    def image_target(
        self, binding: str | None = None, model: str | None = None, host: str | None = None
    ) -> Target:
        """Where a picture request goes: the given binding over the image default, else the automatic one."""
        return self._images.target(binding, model, host)

    def image_binding(self, target: Target | None = None, **config: Any) -> ImageBinding:
        """The image binding for ``target``, made once per (name, host, model, key, settings)."""
        return self._images.binding(target, **config)

    def image(
        self, prompt: str, *, binding: str | None = None, model: str | None = None, host: str | None = None,
        negative_prompt: str = "", width: int | None = None, height: int | None = None,
        seed: int | None = None, steps: int | None = None, cfg_scale: float | None = None, n: int = 1,
        progress: Any = None, namespace: Mapping[str, Any] | None = None, timeout: float | None = None,
        **extra: Any,
    ) -> ImageResult:
        """Make ``n`` pictures of ``prompt``; returns an :class:`~lollms_magics.tti.base.ImageResult`.

        ``namespace`` fills ``{name}`` references as for text prompts; ``progress`` is
        called with a fraction (or None while the amount is unknown); ``timeout`` is the
        seconds the picture may take; ``extra`` goes to the server (``sampler_name=``...).
        """
        prompt, _ = self._prepared(prompt, namespace, "the image prompt")
        negative_prompt, _ = self._prepared(negative_prompt, namespace, "the negative prompt")
        target = self.image_target(binding, model, host)
        chosen = self.image_binding(target, **({"read_timeout": timeout} if timeout else {}))
        try:
            return chosen.create_images(
                prompt, negative_prompt, width, height, seed, steps, cfg_scale, n, progress=progress, **extra
            )
        except ServerUnreachableError:
            self._images.forget_auto(target)  # the server went away: choose again next time
            raise

    def close_images(self) -> None:
        """Close the image bindings' connections."""
        self._images.close()

    # -- one prompt over many items ---------------------------------------------------

    def map(
        self,
        template: str,
        items: Any,
        *,
        binding: str | None = None,
        model: str | None = None,
        host: str | None = None,
        hosts: Sequence[str] | None = None,
        system: str | None = None,
        schema: Any = None,
        concurrency: int = 1,
        fail_fast: bool = False,
        resume: bool | str = True,
        progress: Callable[[MapProgress], None] | None = None,
        namespace: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> MapResult:
        """Ask ``template`` once per item, filled with it: a :class:`~lollms_magics.core.mapping.MapResult`.

        ``items`` is a list, a dict, a pandas Series or DataFrame (a row per
        item), a glob of files (each file's text) or any iterable; ``{item}``,
        ``{item.field}`` and ``{item["col"]}`` in ``template`` (and ``system``)
        name it, other ``{names}`` come from ``namespace``. Every prompt is
        filled and checked for keys before the first is sent; each is sent
        alone (no history), ``concurrency`` at once per host, spread over
        ``hosts`` (URLs of the same binding). ``schema`` makes each result data
        (see :meth:`ask`). A failed item keeps its error and the others go on,
        unless ``fail_fast``. ``resume`` (True, False or a folder) keeps the
        answers, so the same map run again sends only what is missing or
        failed. An interrupt returns what was done, with ``stopped`` set.
        ``result.output()`` lines the results up with the items.
        """
        from .mapping import run_map

        return run_map(
            self, template, items, binding=binding, model=model, host=host, hosts=hosts, system=system,
            schema=schema, concurrency=concurrency, fail_fast=fail_fast, resume=resume, progress=progress,
            namespace=namespace, **options,
        )

    # -- long documents -------------------------------------------------------------

    def summarize(
        self,
        source: Any,
        *,
        binding: str | None = None,
        model: str | None = None,
        host: str | None = None,
        hosts: Sequence[str] | None = None,
        **options: Any,
    ) -> Summary:
        """Summarize a document longer than the context; see :func:`lollms_magics.summaries.summarize`.

        ``source`` is text, a DataFrame, a file, a folder, a glob or a URL;
        ``hosts`` (server URLs of the same binding) share the work, each with
        ``concurrency`` requests at once; ``options`` are ``summarize``'s
        (``mode``, ``instruction``, ``format``, ``ctx_size``, ``progress``...).
        """
        from ..summaries import summarize

        document = self.load_document(source)  # read and checked before any server is asked
        for field in ("instruction", "format"):
            if isinstance(options.get(field), str):
                self.keys.refuse(options[field], f"the summary's {field}")
        urls: Sequence[str | None] = list(hosts) if hosts else [host]
        targets = [self.target(binding, model, url) for url in urls]
        bindings = [self.binding(target) for target in targets]
        options.setdefault("on_call", lambda response: self.usage.record(response, targets[0].name))
        return summarize(document, bindings, **options)

    def load_document(self, source: Any) -> Document:
        """Read ``source`` as :meth:`summarize` would; refused when it holds a known API key.

        A document is sent to the server piece by piece and its summary may
        repeat it, so a key in it is refused before anything is sent, as in
        a prompt (:class:`PromptError` naming the document).
        """
        from ..summaries import load_source

        document = load_source(source)
        if self.keys.holds_secret(document.text):
            name = self.keys.redact(document.name)
            named = name not in ("text", "document", "table") and not name.endswith(" texts")
            self.keys.refuse(document.text, f"the document {name}" if named else "the text to summarize")
        return document


def _same_backend(backend: str, target: Target) -> bool:
    """Whether an exchange's ``binding:model`` is what ``target`` names (its model may be unknown yet)."""
    name, _, model = backend.partition(":")
    return name == target.name and (target.model is None or model == target.model)


_default: Session | None = None


def default_session() -> Session:
    """The kernel's one default session, made on first use (the magics use it)."""
    global _default
    if _default is None:
        _default = Session()
    return _default


def set_default_session(session: Session) -> Session:
    """Make ``session`` the kernel's default (the magics and panels use it from now on).

    The previous default, if another, is closed.
    """
    global _default
    if _default is not None and _default is not session:
        _default.close()
    _default = session
    return session


def summarize(source: Any, **options: Any) -> Summary:
    """``lollms_magics.summarize(source, ...)``: :meth:`Session.summarize` on the kernel's default session."""
    return default_session().summarize(source, **options)
