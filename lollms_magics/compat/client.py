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

The calls are kept by role: generation, discussions and structured content
in :mod:`.generation`, models, personalities and tokens in
:mod:`.server_info`, code and question helpers in :mod:`.codes`, long texts
in :mod:`.longtext`, ``generate_with_tools`` in :mod:`.tools`, pictures
(``lc.tti``) in :mod:`.tti`, and the calls lollms-magics leaves out, each
failing in one line, in :mod:`.refusals`.

To run a script written for one backend on another without editing it,
``LOLLMS_CLIENT_BINDING``, ``LOLLMS_CLIENT_HOST`` and ``LOLLMS_CLIENT_MODEL``
(and ``LOLLMS_CLIENT_TTI_BINDING``, ``LOLLMS_CLIENT_TTI_HOST``) override
what every ``LollmsClient`` of the process is given.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core.session import Session, Target
from ..errors import InvalidOptionError, LollmsMagicsError, LollmsMagicsWarning
from ..secret_fields import clean_key
from .callbacks import Callback
from .codes import CodeHelpers
from .longtext import LongTexts
from .refusals import OutOfScope
from .server_info import ServerInfo
from .tools import ToolCalling
from .tti import make_tti

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
# Arguments of lollms-client's constructor that have no use here.
_UNUSED = frozenset({
    "tts_binding_name", "stt_binding_name", "ttv_binding_name", "ttm_binding_name", "mcp_binding_name",
    "tts_binding_config", "stt_binding_config", "ttv_binding_config", "ttm_binding_config",
    "mcp_binding_config", "llm_bindings_dir", "tts_bindings_dir", "tti_bindings_dir", "stt_bindings_dir",
    "ttv_bindings_dir", "ttm_bindings_dir", "mcp_bindings_dir", "models_path", "n_threads", "callback",
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
        """The model asked for; ``""`` when the server's default (or first) model is used.

        Setting it (``lc.llm.model_name = "llama3.2"``, as lollms-client's
        bindings allow) makes the client's next calls use that model.
        """
        return self().model or ""

    @model_name.setter
    def model_name(self, name: str) -> None:
        self._client.set_model_name(name)

    @property
    def tp(self) -> LollmsClient:
        """lollms-client 1.x's text processor (``lc.llm.tp.yes_no(...)``): the client, which has its calls."""
        return self._client

    def load_model(self, model_name: str) -> bool:
        """Use ``model_name`` from the next call on (lollms-client's binding method); True."""
        self._client.set_model_name(model_name)
        return True

    def generate_from_messages(self, messages: Any, *args: Any, **kwargs: Any) -> str | dict[str, Any]:
        """:meth:`LollmsClient.generate_from_messages`."""
        return self._client.generate_from_messages(messages, *args, **kwargs)

    def split_discussion(self, text: str, *args: Any, **kwargs: Any) -> list[dict[str, str]]:
        """:meth:`LollmsClient.split_discussion`."""
        return self._client.split_discussion(text, *args, **kwargs)

    def get_model_info(self) -> dict[str, Any]:
        """:meth:`LollmsClient.get_model_details`."""
        return self._client.get_model_details()

    def get_ctx_size(self, model_name: str | None = None) -> int | None:
        """:meth:`LollmsClient.get_ctx_size`."""
        return self._client.get_ctx_size(model_name)

    def lollms_listMountedPersonalities(self, host_address: str | None = None) -> Any:
        """:meth:`LollmsClient.listMountedPersonalities`."""
        return self._client.listMountedPersonalities()

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

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "model":  # lollms-client's bindings keep both names
            name = "model_name"
        if name.startswith("_") or isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
        else:
            raise AttributeError(f"lc.binding.{name} cannot be set here; the client's settings are its own")

    def __repr__(self) -> str:
        return f"<ClientBinding {self.binding_name} at {self.host_address} model={self.model_name!r}>"


class LollmsClient(CodeHelpers, ToolCalling, ServerInfo, LongTexts, OutOfScope, Session):
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
        user_name: str = "user",
        ai_name: str = "assistant",
        **unused: Any,
    ) -> None:
        unknown = sorted(set(unused) - _UNUSED)
        if unknown:
            raise TypeError(f"LollmsClient got unexpected keyword argument(s): {', '.join(unknown)}")
        _refuse_modalities(unused)
        self.user_name, self.ai_name = user_name, ai_name  # the !@>user: / !@>assistant: headers
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
        self.tti: CourseTTI | None = make_tti(self, tti_binding_name, dict(tti_binding_config or {}))
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

    # -- the model and the binding, changed on the fly -----------------------------

    def set_model_name(self, model_name: str) -> None:
        """Use ``model_name`` from the next call on (``""``: the server's choice); nothing is sent now.

        What ``lc.llm.model_name = ...``, ``lc.binding.model_name = ...``,
        ``lc.llm.load_model(...)`` and ``lc.switch_model(...)`` do.
        """
        target = self.configured()
        if target is None:  # the environment chose the binding: keep it, with this model
            target = self.default_target()
        self.use(target.name, model_name or None, target.host, reason=target.reason)
        if not model_name and self._chosen is not None:
            self._chosen = Target(target.name, None, target.host, target.reason)

    def update_llm_binding(self, binding_name: str, config: Mapping[str, Any] | None = None) -> None:
        """lollms-client 1.x: use another text binding (``config``: ``host_address``, ``model_name``...)."""
        config = dict(config or {})
        name, protocol = ALIASES.get(binding_name, (binding_name, None))
        key = clean_key(config.pop("service_key", None), "service_key")
        try:
            self.use(name, config.pop("model_name", None) or None, config.pop("host_address", None),
                     api_key=key, reason="set with update_llm_binding")
        except LollmsMagicsError as exc:
            raise InvalidOptionError(f"Failed to update LLM binding: {binding_name}: {exc}") from None
        if "ctx_size" in config:
            self.default_ctx_size = config.pop("ctx_size")
        config.pop("verify_ssl_certificate", None)
        self.binding_name, self._text_binding, self._protocol = binding_name, name, protocol
        self.binding_config.update(config)
        self._check_binding()

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

    # -- pictures -----------------------------------------------------------------

    def close(self) -> None:
        """Close the connections of the text and image bindings."""
        if self.tti is not None:
            self.tti.close()
        self.close_images()
        super().close()

    def __repr__(self) -> str:
        return f"<LollmsClient {self.binding_name} host={self.host_address!r}>"


def _refuse_modalities(unused: Mapping[str, Any]) -> None:
    """Speech, video and music bindings do not exist here: say so once instead of failing later."""
    asked = [k for k in ("tts_binding_name", "stt_binding_name", "ttv_binding_name", "ttm_binding_name",
                         "mcp_binding_name") if unused.get(k)]
    if asked:
        warnings.warn(f"{', '.join(asked)}: lollms-magics has text and image bindings only; "
                      "those attributes stay None", LollmsMagicsWarning, stacklevel=3)

