"""What lollms-client asks a server about: models, personalities, tokens, the model in use.

Return values are lollms-client's: lists of dicts on success, and where a
backend has no such list lollms-client's error dict, ``{"status": False,
"error": "..."}`` (here with ``"message"`` too, as 1.x adds), rather than an
exception:

* ``listModels()`` / ``list_models()``: ``[{"model_name": ...}, ...]``;
* ``listMountedPersonalities()``: lollms-webui's answer to
  ``/list_mounted_personalities`` as it is (``{"status": True,
  "personalities": ["category/name", ...], "active_personality_id": n}``),
  the new LoLLMs server's ``/lollms/v1/personalities`` as it is; other
  backends ``{"status": False, "error": "Functionality not available for
  the current binding"}``, lollms-client's words;
* ``get_model_details()``: ``{"name", "host_address", "model_name", ...}``;
* ``get_ctx_size()``: the context window when the backend says it, else None.

``switch_model(name)`` (and ``lc.llm.load_model(name)``, ``lc.llm.model_name
= name``, ``lc.binding.model_name = name``) changes the model the next call
uses; nothing is sent until then, as lollms-client's HTTP bindings only
record the name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import LollmsMagicsError
from .callbacks import error_dict, one_line
from .room import ClientRoom

if TYPE_CHECKING:
    from ..bindings.base import Binding

__all__ = ["NOT_AVAILABLE", "ServerInfo"]

NOT_AVAILABLE = "Functionality not available for the current binding"


class ServerInfo(ClientRoom):
    """The listing and token calls of :class:`~lollms_magics.compat.client.LollmsClient`."""

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

    def listMountedPersonalities(self) -> list[Any] | dict[str, Any]:
        """The LoLLMs server's personalities as it lists them; an error dict elsewhere (see the module)."""
        from ..core.session import Session

        binding = Session.binding(self)
        if binding.name != "lollms":
            return error_dict(NOT_AVAILABLE)
        try:
            protocol = binding.detect()  # type: ignore[attr-defined]
            path = "/list_mounted_personalities" if protocol == "webui" else "/lollms/v1/personalities"
            return _get(binding, path)  # type: ignore[no-any-return]
        except LollmsMagicsError as exc:
            return error_dict(one_line(self.keys.redact(str(exc))))

    def get_model_details(self) -> dict[str, Any]:
        """The binding and model in use: ``{"name", "host_address", "model_name", ...}`` (no request)."""
        from ..core.session import Session

        binding = Session.binding(self)
        details: dict[str, Any] = {
            "name": self.binding_name, "host_address": binding.host, "model_name": binding.model or "",
        }
        if binding.name == "lollms":
            details["personality"] = getattr(binding, "personality", -1)
        window = binding.context_size
        if window:
            details["ctx_size"] = window
        return details

    def get_ctx_size(self, model_name: str | None = None) -> int | None:
        """The model's context window: ``ctx_size`` given to the client, else the backend's, else None."""
        from ..core.session import Session

        if self.default_ctx_size:
            return int(self.default_ctx_size)
        return Session.binding(self).context_size

    get_context_size = get_ctx_size

    def switch_model(self, model_name: str) -> bool:
        """Use ``model_name`` from the next call on (lollms-client's ``switch_model``); True."""
        self.set_model_name(model_name)
        return True

    def get_available_llm_bindings(self) -> list[str]:
        """The text bindings there are here (``lollms``, ``ollama``, ``openai``, ``llamacpp``...)."""
        from ..bindings import binding_names

        return binding_names()

    get_available_bindings = get_available_llm_bindings

    # -- tokens ---------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """The model's tokens for ``text``, from the server (or the embedded model).

        Raises :class:`~lollms_magics.errors.UnsupportedFeatureError` when the
        backend has no tokenizer to ask (Ollama, OpenAI): lollms-client gave
        tiktoken's tokens there, which are not the model's.
        """
        from ..core.session import Session

        binding = Session.binding(self)
        tokens = binding.tokenize(text)
        if tokens is None:
            raise _cannot(binding, "tokenize text")
        return tokens

    def detokenize(self, tokens: list[int]) -> str:
        """The text of ``tokens``, where the backend can say it (LoLLMs, the embedded model)."""
        from ..core.session import Session

        binding = Session.binding(self)
        text = binding.detokenize(list(tokens))
        if text is None:
            raise _cannot(binding, "detokenize tokens")
        return str(text)

    def count_tokens(self, text: str) -> int:
        """The number of tokens of ``text``: the backend's count, else an estimate (~4 characters each)."""
        from ..core.history import estimate_tokens
        from ..core.session import Session

        tokens = Session.binding(self).tokenize(text)
        return len(tokens) if tokens is not None else estimate_tokens(text)


def _get(binding: Binding, path: str) -> Any:
    """GET ``path`` from the host's root (not under the binding's API prefix); the JSON or an error dict.

    lollms-client returns what the server answered, and an error dict for a
    refusal or a body that is not JSON; a server that cannot be reached is
    an error dict too, with our one-line reason.
    """
    import httpx

    from ..bindings.http import HTTPBinding

    if not isinstance(binding, HTTPBinding):
        return error_dict(NOT_AVAILABLE)
    url = binding.host + path
    try:
        # The binding's own headers (its key); its _request_json would put "/v1" before the path.
        response = binding.client.get(url, headers=binding._headers())
    except httpx.HTTPError as exc:
        return error_dict(f"cannot reach {binding.host} ({type(exc).__name__})")
    if response.status_code != 200:
        return error_dict(f"Failed to list personalities: HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError:
        return error_dict(f"{url} did not answer with JSON")


def _cannot(binding: Binding, what: str) -> LollmsMagicsError:
    from ..tti.base import UnsupportedFeatureError

    return UnsupportedFeatureError(
        f"{binding.name} at {binding.host} cannot {what}: its API has no such call"
    )
