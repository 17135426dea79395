"""The contract every text binding follows.

A binding turns a validated :class:`~lollms_magics.schema.GenerationRequest`
into text pieces. Option validation, images, the warning for options a
backend cannot honour and the :class:`~lollms_magics.response.Response`
bookkeeping live here, so a binding module holds only what is particular to
its backend. HTTP bindings build on :class:`~lollms_magics.bindings.http.HTTPBinding`,
which adds the client, retries, error mapping and the stream loop; the
embedded model subclasses :class:`Binding` directly.

A binding takes part in the automatic choice of backend by declaring an
``auto_priority`` (lower is preferred) and a :meth:`Binding.probe`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..errors import InvalidOptionError, UnsupportedFeatureError, UnsupportedOptionWarning
from ..images import ImageInput, encode_image
from ..options import validate_options
from ..response import Response
from ..schema import GenerationRequest, Message, ModelInfo, ToolCall
from ..secret_fields import clean_key

if TYPE_CHECKING:
    import httpx

__all__ = ["Binding", "GenerationRequest", "Message", "ModelInfo", "Probe", "build_messages"]


class FallbackHook(Protocol):
    """What a binding needs of its fallback chain, :class:`~.chain.Chain` (which builds on this module)."""

    @property
    def fallbacks(self) -> Sequence[Any]: ...

    def attach(self, primary: Binding, request: GenerationRequest, response: Response) -> None: ...


@dataclass(frozen=True)
class Probe:
    """What a binding's automatic-choice probe found.

    ``usable`` is False when a server runs but cannot be used as it is (it
    needs a key, it has no model): ``reason`` then says what to do.
    """

    host: str | None
    model: str | None
    reason: str
    usable: bool = True


def build_messages(
    prompt_or_messages: str | Sequence[Mapping[str, Any]],
    system: str | None,
    images: Sequence[ImageInput] | None,
) -> list[Message]:
    """Turn a prompt or a list of ``{"role", "content"}`` dicts into messages.

    The system prompt comes first; images join the last user message.
    """
    messages: list[Message] = []
    if system:
        messages.append(Message("system", system))
    if isinstance(prompt_or_messages, str):
        messages.append(Message("user", prompt_or_messages))
    else:
        for item in prompt_or_messages:
            try:
                role, content = item["role"], item["content"]
            except (KeyError, TypeError):
                raise InvalidOptionError(
                    'messages must be dicts with "role" and "content"'
                ) from None
            if content is None and item.get("tool_calls"):  # OpenAI's assistant message asking for calls
                content = ""
            if not isinstance(content, str):
                raise InvalidOptionError("message content must be a string")
            images_of = item.get("images") if isinstance(item, Mapping) else None
            encoded = [encode_image(i) for i in images_of] if images_of else []
            message = Message(str(role), content, encoded)
            if isinstance(item, Mapping):
                message.tool_calls = [_tool_call(c) for c in item.get("tool_calls") or ()]
                message.tool_call_id = item.get("tool_call_id")
                message.name = item.get("name")
            messages.append(message)
        if not messages or messages[-1].role in ("system", "assistant"):
            raise InvalidOptionError("the messages must end with a user message (or a tool's result)")
    if images:
        encoded = [encode_image(image) for image in images]
        for message in reversed(messages):
            if message.role == "user":
                message.images.extend(encoded)
                break
    return messages


def _tool_call(item: Any) -> ToolCall:
    """A call of an assistant message: a :class:`ToolCall` or OpenAI's dict."""
    if isinstance(item, ToolCall):
        return item
    try:
        function = item["function"]
        return ToolCall.parse(str(item.get("id") or ""), str(function["name"]), function.get("arguments"))
    except (KeyError, TypeError, AttributeError):
        raise InvalidOptionError(
            'a tool call must be a ToolCall or {"id", "function": {"name", "arguments"}}'
        ) from None


class Binding:
    """Base class of the text bindings.

    Parameters
    ----------
    host:
        The server's base URL; defaults to the binding's environment variable,
        then its usual local address.
    model:
        The default model; when omitted, the server's first model is used.
    api_key:
        The key, when the server needs one; defaults to the binding's
        environment variable. It is shown nowhere. Surrounding whitespace
        (the line end of a key read from a file) is dropped; a key with a
        control character inside raises :class:`InvalidOptionError`.
    """

    name: ClassVar[str] = ""
    default_host: ClassVar[str] = ""
    host_env: ClassVar[str | None] = None
    key_env: ClassVar[str | None] = None
    start_hint: ClassVar[str] = "check that the server runs and that the host is right"
    supports_images: ClassVar[bool] = True
    # The common option names this binding can send, mapped to its wire names.
    option_names: ClassVar[Mapping[str, str]] = {}
    # Place in the automatic choice (lower first); None keeps the binding out of it.
    auto_priority: ClassVar[int | None] = None
    # True when tokenize() is cheap (in-process), so history can be counted with it.
    local_tokenizer: ClassVar[bool] = False
    # True when the backend takes function schemas and reports the model's calls.
    supports_tools: ClassVar[bool] = False

    def __init__(
        self, host: str | None = None, model: str | None = None, api_key: str | None = None
    ) -> None:
        env_host = os.environ.get(self.host_env) if self.host_env else None
        self.host = self._normalize_host(host or env_host or self.default_host)
        self.model = model or None
        self._api_key = clean_key(api_key, "the key given with api_key=") or self.env_key()
        # Set by the session that made the binding: who answers when this backend fails first.
        self.fallback_chain: FallbackHook | None = None

    @classmethod
    def env_key(cls) -> str | None:
        """The key in the binding's environment variable, stripped; None when unset or blank.

        Raises :class:`InvalidOptionError` (naming the variable, never its
        value) when a control character is left inside it.
        """
        if not cls.key_env:
            return None
        return clean_key(os.environ.get(cls.key_env), cls.key_env)

    # -- public API --------------------------------------------------------

    def generate(
        self,
        prompt_or_messages: str | Sequence[Mapping[str, Any]],
        *,
        images: Sequence[ImageInput] | None = None,
        system: str | None = None,
        stream: bool = True,
        model: str | None = None,
        schema: Mapping[str, Any] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tool_choice: Any = None,
        **options: Any,
    ) -> Response:
        """Ask the model for an answer; returns a :class:`~lollms_magics.Response` at once.

        ``prompt_or_messages`` is a prompt string or a list of
        ``{"role": ..., "content": ...}`` chat messages (a message may carry
        its own ``"images"``). ``images`` (paths, bytes, PIL images or data
        URLs) go with the last user message. ``options`` are the common
        generation options (``n_predict``, ``temperature``, ``top_k``,
        ``top_p``, ``repeat_penalty``, ``repeat_last_n``, ``seed``,
        ``ctx_size``, ``stop``); an option this backend cannot honour is
        reported with an :class:`~lollms_magics.errors.UnsupportedOptionWarning`
        and listed in ``response.ignored_options``. ``schema`` (a JSON Schema)
        constrains the answer where the backend can; the answer is neither
        parsed nor checked here (``Session.ask(..., schema=...)`` does that).

        ``tools`` offers functions to the model (OpenAI's ``{"type":
        "function", "function": {...}}`` schemas; ``tool_choice`` as OpenAI
        spells it): the calls it asks for are in ``response.tool_calls`` once
        read. Nothing is run here: ``Session.ask(..., tools=[f, g])`` runs
        them (:mod:`lollms_magics.core.tools`). A binding with no tool API
        raises :class:`~lollms_magics.errors.UnsupportedFeatureError`.

        The request is sent when the response is first iterated or its
        ``.text`` read. Bad options and unreadable images fail here, before.
        """
        checked = validate_options(options)
        messages = build_messages(prompt_or_messages, system, images)
        if not self.supports_images and any(m.images for m in messages):
            raise InvalidOptionError(
                f"{self.name} ({self.model or 'its model'}) reads text only and cannot take images; "
                "use a vision model through Ollama, LoLLMs or an OpenAI-compatible server"
            )
        self._prepare()  # after validation: bad options and images never reach the wire
        ignored = self._ignored_options(checked, stream)
        if ignored:
            warnings.warn(
                f"{self.name} cannot honour {', '.join(ignored)}; "
                f"{'it is' if len(ignored) == 1 else 'they are'} not sent",
                UnsupportedOptionWarning,
                stacklevel=2,
            )
        sent = {k: v for k, v in checked.items() if k not in ignored}
        request = GenerationRequest(
            messages, model or self.model, sent, stream, dict(schema) if schema is not None else None,
            [dict(t) for t in tools] if tools else None, tool_choice,
        )
        if request.tools and not self._can_call_tools():
            raise UnsupportedFeatureError(self._no_tools())
        response = Response(self.name, request.model, checked)
        response.ignored_options = ignored
        response._source = self._generate(request, response)
        if self.fallback_chain is not None and self.fallback_chain.fallbacks:
            # A failure before the first text goes to the next backend (bindings.chain).
            self.fallback_chain.attach(self, request, response)
        return response

    def list_models(self) -> list[ModelInfo]:
        """The models the backend offers, with details where it gives them."""
        return self._list_models()

    def tokenize(self, text: str) -> list[int] | None:
        """The model's tokens for ``text``, or None when the backend has no tokenizer to ask."""
        return None

    def detokenize(self, tokens: list[int]) -> str | None:
        """The text of ``tokens``, or None when the backend cannot say it."""
        return None

    @property
    def context_size(self) -> int | None:
        """The model's context window in tokens, when the binding knows it without asking."""
        return None

    @classmethod
    def probe(cls, client: httpx.Client) -> Probe | None:
        """For the automatic choice: whether this backend can be used here, and how.

        ``client`` is a shared client with short timeouts. Return None when
        nothing answered. Only called when ``auto_priority`` is set.
        """
        return None

    def close(self) -> None:
        """Release what the binding holds (connections); a later call opens them again."""

    def __enter__(self) -> Binding:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        key = ", key set" if self._api_key else ""
        return f"<{type(self).__name__} {self.host} model={self.model!r}{key}>"

    # -- for subclasses ----------------------------------------------------

    def _generate(self, request: GenerationRequest, response: Response) -> Iterator[str]:
        raise NotImplementedError

    def _list_models(self) -> list[ModelInfo]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Called by :meth:`generate` once the request is valid, before options are mapped."""

    def _normalize_host(self, host: str) -> str:
        return host

    def _option_map(self) -> Mapping[str, str]:
        """The common options this binding sends, mapped to their wire names."""
        return self.option_names

    def _ignored_options(self, options: Mapping[str, Any], stream: bool) -> list[str]:
        """The options of a request that the backend would not honour (they are not sent)."""
        supported = self._option_map()
        return [name for name in options if name not in supported]

    def _wire_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` under their wire names, leaving out the ones not supported."""
        names = self._option_map()
        return {names[k]: v for k, v in options.items() if k in names}

    def _can_call_tools(self) -> bool:
        """Whether this backend takes tools (a binding speaking several protocols may say per host)."""
        return self.supports_tools

    def _no_tools(self) -> str:
        """The one line saying this backend cannot call tools."""
        return (
            f"{self.name} has no tool-calling API; use Ollama, an OpenAI-compatible server "
            "(llama.cpp's server, the new LoLLMs server) or the embedded model"
        )

    def _key_hint(self) -> str:
        if self.key_env:
            return f"set {self.key_env}, or give the key with api_key= / %lollms key {self.name}"
        return "check the server's API key settings"
