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

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptionError
from ..options import validate_options
from .asking import Asking
from .docs import DocsIndex
from .fallback import Fallbacks, parse_fallbacks
from .history import Conversation, Exchange
from .imaging import ImageChoice
from .interpolate import DEFAULT_LIMIT
from .keys import KeyStore, declared_key_variables
from .rooms import Rooms
from .sent import SentRequest
from .status import Status, safe_host
from .target import Target
from .usage import UsageLog

if TYPE_CHECKING:
    from ..bindings.base import Binding
    from ..schema import ModelInfo
    from ..summaries.result import Summary

__all__ = ["Session", "Status", "Target", "default_session", "safe_host", "set_default_session", "summarize"]

ENV_BINDING, ENV_MODEL, ENV_HOST = "LOLLMS_MAGICS_BINDING", "LOLLMS_MAGICS_MODEL", "LOLLMS_MAGICS_HOST"


class Session(Asking, Rooms):
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
    fallbacks:
        Backends (``"BINDING[:MODEL]"``, in order) that answer when the
        chosen one fails before its first text: refused, timed out, 429,
        5xx, quota (see :mod:`lollms_magics.core.fallback`).
    image_fallbacks:
        The same for pictures (image bindings).
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
        fallbacks: Sequence[str] | str | None = None,
        image_fallbacks: Sequence[str] | str | None = None,
        **options: Any,
    ) -> None:
        self._fallbacks = Fallbacks()
        self.fallbacks = fallbacks  # type: ignore[assignment]  # the setter takes a str or None too
        self.image_fallbacks = image_fallbacks  # type: ignore[assignment]
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

    @property
    def fallbacks(self) -> list[str]:
        """The backends that answer when the chosen one fails before its first text (``BINDING[:MODEL]``).

        Set it to a list or a comma-separated string; names are checked at once.
        """
        return self._fallbacks.labels(self._fallbacks.text)

    @fallbacks.setter
    def fallbacks(self, specs: Sequence[str] | str | None) -> None:
        self._fallbacks.text = parse_fallbacks(specs)

    @property
    def image_fallbacks(self) -> list[str]:
        """The image bindings that make a picture when the chosen one fails (``BINDING[:MODEL]``)."""
        return self._fallbacks.labels(self._fallbacks.images)

    @image_fallbacks.setter
    def image_fallbacks(self, specs: Sequence[str] | str | None) -> None:
        self._fallbacks.images = parse_fallbacks(specs, image=True)

    def binding(self, target: Target | None = None) -> Binding:
        """The binding for ``target`` (default: the session's), made once per (name, host, model, key).

        With :attr:`fallbacks`, its answers fall back to them (its ``fallback_chain``).
        """
        target = target or self.default_target()
        binding = self._made(target)
        binding.fallback_chain = self._fallbacks.chain_for(target, self._made)
        return binding

    def fallback_rows(self) -> list[tuple[str, str]]:
        """``%lollms status``'s rows on the fallback chain and the switches it made lately."""
        return self._fallbacks.status_rows()

    def _made(self, target: Target) -> Binding:
        """The binding for ``target``, made once per (name, host, model, key, settings)."""
        from ..bindings import binding_class

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
