"""``lc.tti``: lollms-client's text-to-image interface over the image bindings.

lollms-client's TTI bindings answer ``list_services()``, ``get_settings()``
and ``set_settings()`` even when their server has no such call (the new
LoLLMs server, DALL-E): with ``[]``, ``{}`` and ``False``. The course's script
relies on it (it prints "No TTI services listed" and goes on to make the
picture), so an image binding's ``UnsupportedFeatureError`` becomes those
values here; every other failure raises, as in lollms-client.

For lollms-webui (9600) the three calls need the ``client_id`` of an open
web UI session: lollms-client takes it from ``service_key`` or a
``client_id=`` argument, and so does this class (else ``LOLLMS_CLIENT_ID``).

Settings that hold a secret (lollms-webui's ``openai_api_key`` of the DALL-E
service...) come back from ``get_settings()`` masked, since scripts print
them; handed back to ``set_settings()`` still masked, they keep the value
the server had, so the course's get, change, set round trip works.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any

from ..errors import LollmsMagicsError, LollmsMagicsWarning
from ..secret_fields import MASK, clean_key, is_secret_setting, mask_settings
from .callbacks import one_line

if TYPE_CHECKING:
    from ..tti.base import ImageBinding
    from .room import ClientRoom

__all__ = ["SAME_SERVER", "TTI_ALIASES", "CourseTTI", "make_tti"]

# lollms-client's TTI binding names over its versions -> ours (dalle: OpenAI's images, 0.17-1.14).
TTI_ALIASES = {"dalle": "openai", "dall-e": "openai", "openai_tti": "openai", "lollms_webui": "lollms"}
# Image bindings that live on the same server as a text binding (the TTI gets the client's host).
SAME_SERVER = {"lollms": "lollms", "openai": "openai"}


def make_tti(client: ClientRoom, name: str | None, config: dict[str, Any]) -> CourseTTI | None:
    """``lc.tti``: the image binding ``name`` (lollms-client's names, ``tti_binding_config``'s keys), or None.

    It becomes the session's image default too, so ``%lollms image`` and
    ``Session.image`` use the same server. A binding that cannot be made
    leaves ``lc.tti`` at None with a warning, as in lollms-client.
    """
    name = os.environ.get("LOLLMS_CLIENT_TTI_BINDING") or name  # client.ENV_OVERRIDES
    if not name:
        return None
    given, name = name, TTI_ALIASES.get(name, name)
    from ..errors import UnknownBindingError
    from ..tti import image_binding_names

    given_host = config.pop("host_address", None) or config.pop("base_url", None)
    host = os.environ.get("LOLLMS_CLIENT_TTI_HOST") or given_host
    if host is None and SAME_SERVER.get(name) == client._text_binding:
        host = client.host_address  # the course's TTI lives on the client's server
    given_key = config.pop("service_key", None) or config.pop("api_key", None)
    key = clean_key(given_key, "the TTI service_key") or client.service_key
    config.pop("verify_ssl_certificate", None)
    # lollms-client's dalle/openai defaults: the size is used when a call gives none, the rest
    # (quality, style) have no setting here.
    size = config.pop("default_size", None) or config.pop("size", None)
    for unused in ("default_quality", "default_style", "quality", "style", "certificate_file_path"):
        config.pop(unused, None)
    if name == "lollms" and key:
        config.setdefault("client_id", key)  # lollms-webui's image calls take the key as client id
    model = config.pop("model_name", None)
    try:
        # The session's image default too: %lollms image and Session.image use the same server.
        client.use_image(name, model, host, api_key=key, **config)
        binding = client.image_binding()
    except (LollmsMagicsError, TypeError, ValueError) as exc:
        client.use_image("auto")
        reason = one_line(str(exc))
        if isinstance(exc, UnknownBindingError):
            names = [n + (" (dalle)" if n == "openai" else "") for n in image_binding_names()]
            reason = f"the image bindings are {', '.join(names)}"
        warnings.warn(
            f"no TTI binding: {given!r} could not be made ({reason}); lc.tti is None",
            LollmsMagicsWarning, stacklevel=3,
        )
        return None
    return CourseTTI(binding, given, size=size)


class CourseTTI:
    """An image binding with lollms-client's method names and return values.

    ``binding`` is the :class:`~lollms_magics.tti.base.ImageBinding` underneath;
    other attributes (``create_images``, ``list_models``...) are its own.
    """

    def __init__(self, binding: ImageBinding, binding_name: str, size: str | None = None) -> None:
        self.binding = binding
        self.binding_name = binding_name
        self.default_size = size  # "WxH" from tti_binding_config, for calls that give no size
        self._by_client: dict[str, ImageBinding] = {}
        self._hidden: dict[str, Any] = {}  # the secret settings' values get_settings masked, by name

    @property
    def host_address(self) -> str:
        """The image server's address."""
        return self.binding.host

    def _for(self, client_id: str | None) -> ImageBinding:
        """The binding that sends ``client_id`` (lollms-webui), made once per id."""
        if not client_id or client_id == getattr(self.binding, "_client_id", None):
            return self.binding
        made = self._by_client.get(client_id)
        if made is None:
            from ..tti import get_image_binding

            made = get_image_binding(
                self.binding.name, self.binding.host, self.binding.model, self.binding._api_key,
                client_id=client_id,
            )
            self._by_client[client_id] = made
        return made

    def list_services(self, client_id: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        """The image services the server offers (``[{"name", "caption", "help"}]``); ``[]`` if unknown.

        An OpenAI-compatible image server has no services: its image models
        are listed as the services (``{"name": model, "caption": model,
        "help": ...}``), so a script choosing a service by name chooses a
        model; ``[]`` when it cannot list them.
        """
        from ..errors import BindingError
        from ..tti.base import UnsupportedFeatureError

        try:
            return self._for(client_id).list_services()
        except UnsupportedFeatureError:
            pass
        if self.binding.name != "openai":
            return []
        try:
            models = self.binding.list_models()
        except (UnsupportedFeatureError, BindingError):
            return []
        return [{"name": m.name, "caption": m.name, "help": f"image model {m.name} of {self.binding.host}"}
                for m in models]

    def get_settings(self, client_id: str | None = None, **kwargs: Any) -> Any:
        """The active service's settings (lollms-webui: ``[{"name", "type", "value", ...}]``); else ``{}``."""
        from ..tti.base import UnsupportedFeatureError

        try:
            settings = self._for(client_id).get_settings()
        except UnsupportedFeatureError:
            return {}
        if not settings:
            return {}
        self._hidden = _secret_values(settings)
        return mask_settings(settings)

    def set_settings(self, settings: Any, client_id: str | None = None, **kwargs: Any) -> bool:
        """Apply ``settings`` (the list ``get_settings`` gave, changed); False when the server cannot."""
        from ..tti.base import UnsupportedFeatureError

        try:
            return bool(self._for(client_id).set_settings(_unmasked(settings, self._hidden)))
        except UnsupportedFeatureError:
            return False

    def generate_image(
        self,
        prompt: str,
        negative_prompt: str = "",
        width: int | None = None,
        height: int | None = None,
        client_id: str | None = None,
        **kwargs: Any,
    ) -> bytes:
        """The encoded picture (JPEG from lollms-webui, PNG from most others); raises on failure.

        ``width`` and ``height`` default to the config's ``default_size``
        (``size``), else 512. ``size="WxH"`` (lollms-client 1.x's OpenAI
        spelling) gives both. ``kwargs`` go to the server: ``seed``,
        ``steps``, ``cfg_scale`` where it honours them (a warning says when
        not), and server-specific fields.
        """
        kwargs.pop("n", None)  # one picture, as lollms-client's binding returns one
        size = kwargs.pop("size", None) or self.default_size
        if size and width is None and height is None:
            width, height = (int(v) for v in str(size).lower().split("x"))
        width, height = width or 512, height or 512
        data = self._for(client_id).generate_image(prompt, negative_prompt, width, height, **kwargs)
        return data if isinstance(data, bytes) else data[0]

    def list_models(self) -> list[dict[str, Any]]:
        """The image models (lollms-client 1.x), as ``{"model_name": ...}`` dicts."""
        return [{**dict(m.details), "model_name": m.name} for m in self.binding.list_models()]

    def close(self) -> None:
        """Close the image bindings' connections."""
        self.binding.close()
        for made in self._by_client.values():
            made.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "binding":
            raise AttributeError(name)
        return getattr(self.binding, name)

    def __repr__(self) -> str:
        return f"<CourseTTI {self.binding_name} at {self.binding.host}>"


def _secret_values(settings: Any) -> dict[str, Any]:
    """The values of the secret settings, by name (a template list or a ``{name: value}`` dict)."""
    pairs: list[tuple[Any, Any]] = []
    if isinstance(settings, dict):
        pairs = list(settings.items())
    elif isinstance(settings, list):
        pairs = [(e.get("name"), e.get("value")) for e in settings if isinstance(e, dict)]
    return {name: value for name, value in pairs if isinstance(name, str) and is_secret_setting(name, value)}


def _unmasked(settings: Any, hidden: dict[str, Any]) -> Any:
    """``settings`` with each value still masked given back the value the server had."""
    if isinstance(settings, dict):
        return {k: hidden[k] if v == MASK and k in hidden else v for k, v in settings.items()}
    if isinstance(settings, list):
        return [
            {**e, "value": hidden[e["name"]]}
            if isinstance(e, dict) and e.get("value") == MASK and e.get("name") in hidden else e
            for e in settings
        ]
    return settings
