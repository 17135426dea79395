"""``LollmsClient``: a :class:`~lollms_magics.core.session.Session` with lollms-client's spelling.

The course's scripts run with one change, ``from lollms_client import ...``
becoming ``from lollms_magics import ...``::

    from lollms_magics import LollmsClient, MSG_TYPE

    lc = LollmsClient(binding_name="ollama", host_address="http://localhost:11434",
                      model_name="llama3.2")
    text = lc.generate_text("What is the capital of France?", n_predict=50)
    if isinstance(text, dict):          # {"status": False, "error": "..."} on failure
        print(text["error"])

A client **is** a Session (``lc.session`` is ``lc`` itself): ``lc.ask(...)``,
``lc.models()``, ``lc.status()`` and the conversation work as on any session,
and ``lc.make_default()`` makes it the kernel's default session, the one
the magics and panels use from then on. Because
:meth:`Session.binding` is a method and lollms-client's ``lc.binding`` an
object, ``lc.binding`` (also ``lc.llm``) is a :class:`ClientBinding`: it has
``binding_name``, ``host_address`` and ``model_name``, and calling it does
what ``Session.binding(target)`` does.

To run a script written for one backend on another without editing it,
``LOLLMS_CLIENT_BINDING``, ``LOLLMS_CLIENT_HOST`` and ``LOLLMS_CLIENT_MODEL``
(and ``LOLLMS_CLIENT_TTI_BINDING``, ``LOLLMS_CLIENT_TTI_HOST``) override
what every ``LollmsClient`` of the process is given.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..core.session import Session, Target
from ..errors import InvalidOptionError, LollmsMagicsError, LollmsMagicsWarning
from ..secret_fields import clean_key
from .callbacks import Callback, error_dict, failure, one_line, read_answer
from .summary import SummaryArguments, run_sequential_summarize

if TYPE_CHECKING:
    from ..bindings.base import Binding
    from ..summaries import Summary
    from .tti import CourseTTI

__all__ = ["ENV_OVERRIDES", "ClientBinding", "LollmsClient"]

ENV_OVERRIDES = {
    "binding": "LOLLMS_CLIENT_BINDING",
    "host": "LOLLMS_CLIENT_HOST",
    "model": "LOLLMS_CLIENT_MODEL",
    "tti_binding": "LOLLMS_CLIENT_TTI_BINDING",
    "tti_host": "LOLLMS_CLIENT_TTI_HOST",
}
# lollms-client binding names -> (our binding, the LoLLMs protocol to pin).
ALIASES: dict[str, tuple[str, str | None]] = {
    "lollms_webui": ("lollms", "webui"),
    "lollms_chat": ("lollms", "v1"),
    "llama_cpp_server": ("openai", None),
    "pythonllamacpp": ("llamacpp", None),
}
# Image bindings that live on the same server as a text binding (the TTI gets the client's host).
SAME_SERVER = {"lollms": "lollms", "openai": "openai"}
# Arguments of lollms-client's constructor that have no use here.
_UNUSED = frozenset({
    "tts_binding_name", "stt_binding_name", "ttv_binding_name", "ttm_binding_name", "mcp_binding_name",
    "tts_binding_config", "stt_binding_config", "ttv_binding_config", "ttm_binding_config",
    "mcp_binding_config", "llm_bindings_dir", "tts_bindings_dir", "tti_bindings_dir", "stt_bindings_dir",
    "ttv_bindings_dir", "ttm_bindings_dir", "mcp_bindings_dir", "models_path", "n_threads",
    "user_name", "ai_name",
})
# Keyword arguments of generate_text that have no use here (n_threads: the server decides;
# auto_continue_on_truncation, lollms-client 1.9's: a structured answer cut short is repaired anyway).
_IGNORED_GENERATE = frozenset({
    "auto_continue_on_truncation", "n_threads", "split", "user_keyword", "ai_keyword", "think",
    "reasoning_effort", "reasoning_summary",
    "videos",
})


class ClientBinding:
    """``lc.binding`` / ``lc.llm``: the text binding as lollms-client shows it.

    Calling it returns the real :class:`~lollms_magics.bindings.base.Binding`
    (what :meth:`Session.binding` does); other attributes not defined here
    are the real binding's own (``protocol``, ``tokenize``...).
    """

    def __init__(self, client: LollmsClient) -> None:
        self._client = client

    def __call__(self, target: Target | None = None) -> Binding:
        return Session.binding(self._client, target)

    @property
    def binding_name(self) -> str:
        """The name the client was given (``"lollms"``, ``"ollama"``...)."""
        return self._client.binding_name

    @property
    def host_address(self) -> str:
        """The server's address, after defaults."""
        return self().host

    @property
    def model_name(self) -> str:
        """The model asked for; ``""`` when the server's default (or first) model is used."""
        return self().model or ""

    def generate_text(self, prompt: str, *args: Any, **kwargs: Any) -> str | dict[str, Any]:
        """:meth:`LollmsClient.generate_text`."""
        return self._client.generate_text(prompt, *args, **kwargs)

    def listModels(self) -> list[dict[str, Any]] | dict[str, Any]:
        """:meth:`LollmsClient.listModels`."""
        return self._client.listModels()

    def list_models(self) -> list[dict[str, Any]] | dict[str, Any]:
        """:meth:`LollmsClient.list_models`."""
        return self._client.list_models()

    def tokenize(self, text: str) -> list[int]:
        """:meth:`LollmsClient.tokenize`."""
        return self._client.tokenize(text)

    def detokenize(self, tokens: list[int]) -> str:
        """:meth:`LollmsClient.detokenize`."""
        return self._client.detokenize(tokens)

    def count_tokens(self, text: str) -> int:
        """:meth:`LollmsClient.count_tokens`."""
        return self._client.count_tokens(text)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self(), name)

    def __repr__(self) -> str:
        return f"<ClientBinding {self.binding_name} at {self.host_address} model={self.model_name!r}>"


class LollmsClient(Session):
    """lollms-client's ``LollmsClient`` (the course's 0.12-0.28 spelling, and 1.x's).

    Parameters
    ----------
    binding_name:
        ``"lollms"`` (lollms-webui on 9600 or the new server on 9642, told
        apart on first use), ``"ollama"``, ``"openai"``, ``"llamacpp"`` or any
        registered binding; lollms-client's ``"lollms_webui"`` and
        ``"lollms_chat"`` pin the LoLLMs protocol.
    host_address:
        The server; ``None`` uses the binding's (``LOLLMS_HOST``, else
        ``http://localhost:9600``, then 9642; ``OLLAMA_HOST``...).
    model_name:
        The model; ``""`` lets the server choose.
    tti_binding_name:
        An image binding (``"lollms"``, ``"openai"``, ``"a1111"``, ``"comfyui"``)
        for ``lc.tti``; ``None`` leaves ``lc.tti`` at ``None``.
    service_key:
        The API key (Bearer); for lollms-webui's image calls, the client id.
    ctx_size, n_predict, temperature, top_k, top_p, repeat_penalty, repeat_last_n, seed:
        Defaults for every generation; ``None`` leaves each to the server.
    stream, streaming_callback:
        Whether :meth:`generate_text` streams by default, and its default callback.
    llm_binding_name, llm_binding_config, tti_binding_config:
        lollms-client 1.x's spelling: the config dicts hold ``host_address``,
        ``model_name``, ``service_key``, ``verify_ssl_certificate``,
        ``ctx_size``, and settings of the binding (``read_timeout``...).
    """

    def __init__(
        self,
        binding_name: str | None = "lollms",
        host_address: str | None = None,
        model_name: str = "",
        *,
        tti_binding_name: str | None = None,
        service_key: str | None = None,
        verify_ssl_certificate: bool = True,
        personality: int | None = None,
        ctx_size: int | None = None,
        n_predict: int | None = None,
        stream: bool = False,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        repeat_penalty: float | None = None,
        repeat_last_n: int | None = None,
        seed: int | None = None,
        streaming_callback: Callback | None = None,
        llm_binding_name: str | None = None,
        llm_binding_config: Mapping[str, Any] | None = None,
        tti_binding_config: Mapping[str, Any] | None = None,
        **unused: Any,
    ) -> None:
        unknown = sorted(set(unused) - _UNUSED)
        if unknown:
            raise TypeError(f"LollmsClient got unexpected keyword argument(s): {', '.join(unknown)}")
        _refuse_modalities(unused)
        config = dict(llm_binding_config or {})
        given = llm_binding_name or binding_name or "lollms"
        self.binding_name: str = os.environ.get(ENV_OVERRIDES["binding"]) or given
        host = config.pop("host_address", None) or host_address
        self.host_address: str | None = os.environ.get(ENV_OVERRIDES["host"]) or host
        model = os.environ.get(ENV_OVERRIDES["model"]) or config.pop("model_name", None) or model_name
        # Stripped as it enters: a key read from a file ends in a newline, which httpx refuses.
        given_key = config.pop("service_key", None) or service_key
        self.service_key: str | None = clean_key(given_key, "service_key")
        verify = config.pop("verify_ssl_certificate", verify_ssl_certificate)
        ctx_size = config.pop("ctx_size", None) or ctx_size
        self.personality = config.pop("personality", personality)
        name, self._protocol = ALIASES.get(self.binding_name, (self.binding_name, None))
        self._text_binding = name
        options: dict[str, Any] = {
            "n_predict": n_predict, "temperature": temperature, "top_k": top_k, "top_p": top_p,
            "repeat_penalty": repeat_penalty, "repeat_last_n": repeat_last_n, "seed": seed,
        }
        try:
            super().__init__(name, model or None, self.host_address, api_key=self.service_key,
                             context_size=ctx_size or 4096, **options)
        except LollmsMagicsError as exc:  # lollms-client raises ValueError here
            raise InvalidOptionError(f"Failed to create LLM binding {self.binding_name!r}: {exc}") from None
        self.binding_config.update(config)
        if not verify:
            self.binding_config["verify"] = False
        self._check_binding()
        self.default_ctx_size = ctx_size
        self.default_n_predict = n_predict
        self.default_stream = stream
        self.default_temperature, self.default_top_k, self.default_top_p = temperature, top_k, top_p
        self.default_repeat_penalty, self.default_repeat_last_n = repeat_penalty, repeat_last_n
        self.default_seed = seed
        self.default_streaming_callback = streaming_callback
        self.last_summary: Summary | None = None  # the figures of the last sequential_summarize
        self.tti: CourseTTI | None = self._make_tti(tti_binding_name, dict(tti_binding_config or {}))
        self.tts = self.stt = self.ttv = self.ttm = None  # lollms-client's other modalities: none here

    # -- what the course reads -------------------------------------------------

    @property  # type: ignore[override]  # lollms-client's lc.binding is an object; it stays callable
    def binding(self) -> ClientBinding:
        """The text binding, lollms-client style (``binding_name``, ``host_address``, ``model_name``)."""
        return ClientBinding(self)

    @property
    def llm(self) -> ClientBinding:
        """lollms-client 1.x's name for :attr:`binding`."""
        return ClientBinding(self)

    @property
    def session(self) -> LollmsClient:
        """The client itself: it is the Session the magics can use (see :meth:`make_default`)."""
        return self

    def make_default(self) -> LollmsClient:
        """Make this client the kernel's default session (what ``%lollms`` uses once the extension loads)."""
        from ..core.session import set_default_session

        set_default_session(self)
        return self

    def _config_for(self, cls: type[Binding]) -> dict[str, Any]:
        config = super()._config_for(cls)
        if cls.name == "lollms":  # lollms-client's spellings that pin the protocol, and its personality
            if self._protocol:
                config["protocol"] = self._protocol
            if self.personality is not None:
                config["personality"] = self.personality
        return config

    def _check_binding(self) -> None:
        """Make the binding now (no request is sent), so a bad setting fails here as in lollms-client."""
        try:
            Session.binding(self)
        except TypeError as exc:
            raise InvalidOptionError(
                f"Failed to create LLM binding {self.binding_name!r}: {exc}; check llm_binding_config"
            ) from None

    # -- generation -----------------------------------------------------------------

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
        **kwargs: Any,
    ) -> str | dict[str, Any]:
        """The generated text, or ``{"status": False, "error": "<one line>"}`` when it failed.

        ``images`` are file paths (or bytes, PIL images, data URLs). With a
        ``streaming_callback`` (this call's, else the constructor's) the
        answer streams, unless ``stream=False``: ``callback(chunk,
        MSG_TYPE.MSG_TYPE_CHUNK)`` per piece; returning ``False`` stops and
        the text so far is returned; ``None`` continues (see
        :mod:`lollms_magics.compat.callbacks`); a failure reaches it as
        ``MSG_TYPE_EXCEPTION`` before the error dict is returned. The
        conversation is not used or kept: each call stands alone.
        """
        callback = streaming_callback or self.default_streaming_callback
        if stream is None:
            stream = self.default_stream or callback is not None
        options: dict[str, Any] = {
            "n_predict": n_predict, "temperature": temperature, "top_k": top_k, "top_p": top_p,
            "repeat_penalty": repeat_penalty, "repeat_last_n": repeat_last_n, "seed": seed,
        }
        options.update({k: v for k, v in kwargs.items() if k not in _IGNORED_GENERATE})
        try:
            response = self.ask(prompt, system=system_prompt or None, images=list(images or ()) or None,
                                stream=bool(stream), history=False, **options)
        except LollmsMagicsError as exc:
            return failure(exc, callback, self.keys.redact)
        return read_answer(response, callback if stream else None, self.keys.redact)

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
        schema. ``kwargs`` are
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
        options = {k: v for k, v in kwargs.items() if k not in _IGNORED_GENERATE and k != "debug"}
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

    # -- models and tokens ----------------------------------------------------------

    def listModels(self) -> list[dict[str, Any]] | dict[str, Any]:
        """The models of the binding as ``[{"model_name": ...}, ...]``, or an error dict."""
        try:
            models = self.models()
        except LollmsMagicsError as exc:
            return error_dict(one_line(self.keys.redact(str(exc))))
        return [{**dict(m.details), "model_name": m.name} for m in models]

    def list_models(self) -> list[dict[str, Any]] | dict[str, Any]:
        """lollms-client 1.7's name for :meth:`listModels`."""
        return self.listModels()

    def tokenize(self, text: str) -> list[int]:
        """The model's tokens for ``text``, from the server (or the embedded model).

        Raises :class:`~lollms_magics.errors.UnsupportedFeatureError` when the
        backend has no tokenizer to ask (Ollama, OpenAI): lollms-client gave
        tiktoken's tokens there, which are not the model's.
        """
        binding = Session.binding(self)
        tokens = binding.tokenize(text)
        if tokens is None:
            raise _cannot(binding, "tokenize text")
        return tokens

    def detokenize(self, tokens: list[int]) -> str:
        """The text of ``tokens``, where the backend can say it (LoLLMs, the embedded model)."""
        binding = Session.binding(self)
        detokenize = getattr(binding, "detokenize", None)
        text = detokenize(list(tokens)) if detokenize is not None else None
        if text is None:
            raise _cannot(binding, "detokenize tokens")
        return str(text)

    def count_tokens(self, text: str) -> int:
        """The number of tokens of ``text``: the backend's count, else an estimate (~4 characters each)."""
        from ..core.history import estimate_tokens

        tokens = Session.binding(self).tokenize(text)
        return len(tokens) if tokens is not None else estimate_tokens(text)

    # -- long documents -------------------------------------------------------------

    def sequential_summarize(self, *args: Any, **kwargs: Any) -> str:
        """Summarize a text longer than the context, chunk by chunk with a memory; returns the summary.

        Takes lollms-client's arguments (``text, chunk_processing_prompt,
        chunk_processing_output_format, final_memory_processing_prompt,
        final_output_format, ctx_size, chunk_size, overlap,
        bootstrap_chunk_size, bootstrap_steps, callback, debug``) and the
        course's (``full_text_content``, ``instruction_prompt``,
        ``output_format_prompt``, ``context_size``); see
        :mod:`lollms_magics.compat.summary`. Failures return ``"Error: ..."``;
        :attr:`last_summary` keeps the figures (calls, tokens, time).
        """
        arguments = SummaryArguments(args, kwargs)
        try:  # the rule of every prompt: a text holding a key is not sent
            self.keys.refuse(str(arguments.text), "the text to summarize")
        except LollmsMagicsError as exc:
            failure(exc, arguments.callback, self.keys.redact)
            return f"Error: {exc}"
        text, self.last_summary = run_sequential_summarize(
            Session.binding(self), arguments, self.default_n_predict, self.default_temperature,
            self.default_ctx_size, self.keys.redact,
        )
        return text

    # -- pictures -----------------------------------------------------------------

    def _make_tti(self, name: str | None, config: dict[str, Any]) -> CourseTTI | None:
        name = os.environ.get(ENV_OVERRIDES["tti_binding"]) or name
        if not name:
            return None
        from .tti import CourseTTI

        host = os.environ.get(ENV_OVERRIDES["tti_host"]) or config.pop("host_address", None)
        if host is None and SAME_SERVER.get(name) == self._text_binding:
            host = self.host_address  # the course's TTI lives on the client's server
        key = clean_key(config.pop("service_key", None), "the TTI service_key") or self.service_key
        config.pop("verify_ssl_certificate", None)
        if name == "lollms" and key:
            config.setdefault("client_id", key)  # lollms-webui's image calls take the key as client id
        model = config.pop("model_name", None)
        try:
            # The session's image default too: %lollms image and Session.image use the same server.
            self.use_image(name, model, host, api_key=key, **config)
            binding = self.image_binding()
        except (LollmsMagicsError, TypeError, ValueError) as exc:
            self.use_image("auto")
            warnings.warn(
                f"no TTI binding: {name!r} could not be made ({one_line(str(exc))}); lc.tti is None",
                LollmsMagicsWarning, stacklevel=3,
            )
            return None
        return CourseTTI(binding, name)

    def close(self) -> None:
        """Close the connections of the text and image bindings."""
        if self.tti is not None:
            self.tti.close()
        self.close_images()
        super().close()

    def __repr__(self) -> str:
        return f"<LollmsClient {self.binding_name} host={self.host_address!r}>"


def _structured_failure(error: dict[str, Any]) -> None:
    """lollms-client's failure value for structured content, ``None``, with the reason as a warning."""
    warnings.warn(f"generate_structured_content failed: {error['error']}", LollmsMagicsWarning, stacklevel=3)


def _refuse_modalities(unused: Mapping[str, Any]) -> None:
    """Speech, video and music bindings do not exist here: say so once instead of failing later."""
    asked = [k for k in ("tts_binding_name", "stt_binding_name", "ttv_binding_name", "ttm_binding_name",
                         "mcp_binding_name") if unused.get(k)]
    if asked:
        warnings.warn(f"{', '.join(asked)}: lollms-magics has text and image bindings only; "
                      "those attributes stay None", LollmsMagicsWarning, stacklevel=3)


def _cannot(binding: Binding, what: str) -> LollmsMagicsError:
    from ..tti.base import UnsupportedFeatureError

    return UnsupportedFeatureError(
        f"{binding.name} at {binding.host} cannot {what}: its API has no such call"
    )
