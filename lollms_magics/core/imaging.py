"""The image backend of a session, kept apart from its text backend.

:meth:`ImageChoice.use` (``%lollms tti use``) chooses it; otherwise the
automatic choice probes the image servers on their usual ports at the same
time (:mod:`lollms_magics.tti.auto`), once, and again after the chosen
server went away. Bindings are made once per name, host, model, key and
settings, and the settings given per binding are kept for the next ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .keys import KeyStore
from .target import Target

if TYPE_CHECKING:
    from ..tti.base import ImageBinding

__all__ = ["ImageChoice"]


class ImageChoice:
    """Which image server a session's pictures go to, and the bindings made for it."""

    def __init__(self, keys: KeyStore, auto_timeout: Callable[[], float]) -> None:
        self.keys = keys
        self._auto_timeout = auto_timeout
        self.chosen: Target | None = None
        self._auto: Target | None = None
        self._made: dict[tuple[Any, ...], ImageBinding] = {}
        self._settings: dict[str, dict[str, Any]] = {}  # per binding name

    def use(self, binding: str = "auto", model: str | None = None, host: str | None = None,
            **config: Any) -> Target | None:
        """Make ``binding`` the default; ``"auto"`` returns to the automatic choice."""
        from ..tti import image_binding_class

        if binding.lower() == "auto":
            self.chosen = self._auto = None
            return None
        name, _, inline_model = binding.partition(":")
        image_binding_class(name)  # UnknownBindingError at once for a typo
        if config:
            self._settings.setdefault(name, {}).update(config)
        self.chosen = Target(name, model or inline_model or None, host, "set with use_image")
        return self.chosen

    def target(self, binding: str | None = None, model: str | None = None, host: str | None = None) -> Target:
        """Where a picture request goes: the given binding over the default, else the automatic one."""
        if binding:
            name, _, inline_model = binding.partition(":")
            base = self.chosen
            if base is None or base.name != name:
                base = Target(name, inline_model or None, None, "chosen for this picture")
        elif self.chosen is not None:
            base = self.chosen
        else:
            if self._auto is None:
                from ..tti.auto import choose_image_binding

                name, found_host, found_model, why = choose_image_binding(timeout=self._auto_timeout())
                self._auto = Target(name, found_model, found_host, f"chosen automatically: {why}")
            base = self._auto
        return Target(base.name, model or base.model, host or base.host, base.reason)

    def binding(self, target: Target | None = None, **config: Any) -> ImageBinding:
        """The image binding for ``target`` (default: :meth:`target`)."""
        from ..tti import image_binding_class

        target = target or self.target()
        cls = image_binding_class(target.name)
        merged = {**self._settings.get(target.name, {}), **config}
        key = self.keys.get(target.name)
        env_key = os.environ.get(cls.key_env) if cls.key_env else None  # a changed variable: a new binding
        settings = tuple(sorted(merged.items(), key=str))
        cache_key = (target.name, target.host, target.model, key or env_key, settings)
        made = self._made.get(cache_key)
        if made is None:
            made = cls(host=target.host, model=target.model, api_key=key, **merged)
            self._made[cache_key] = made
        return made

    def forget_auto(self, target: Target) -> None:
        """Forget the automatic choice if ``target`` was it (its server went away)."""
        if self._auto is not None and target.name == self._auto.name:
            self._auto = None

    def close(self) -> None:
        """Close the image bindings' connections."""
        for made in self._made.values():
            made.close()
        self._made.clear()
