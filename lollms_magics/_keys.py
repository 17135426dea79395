"""API keys, kept in the kernel's memory and out of everything shown.

A key comes from ``%lollms key BINDING`` (typed into a hidden prompt) or from
the binding's environment variable. It is never written to disk, printed or
put in output metadata; :meth:`KeyStore.redact` is the last guard, applied to
every message and metadata value the magics emit.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator

__all__ = ["KeyStore"]

# Environment variables whose values are treated as secrets when redacting.
_SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET")
_MASK = "***"


class KeyStore:
    """The keys typed in this kernel, by binding name."""

    def __init__(self) -> None:
        self._keys: dict[str, str] = {}

    def __contains__(self, binding: str) -> bool:
        return binding in self._keys

    def get(self, binding: str) -> str | None:
        """The key typed for ``binding``, if any (the binding reads its own env var otherwise)."""
        return self._keys.get(binding)

    def ask(self, binding: str) -> bool:
        """Ask for ``binding``'s key with a hidden prompt; an empty answer forgets it.

        Returns True when a key is now kept.
        """
        key = getpass.getpass(f"API key for {binding} (hidden, kept in memory only): ").strip()
        if key:
            self._keys[binding] = key
        else:
            self._keys.pop(binding, None)
        return bool(key)

    def _secrets(self) -> Iterator[str]:
        yield from self._keys.values()
        for name, value in os.environ.items():
            if name.endswith(_SECRET_SUFFIXES):
                yield value

    def redact(self, text: str) -> str:
        """``text`` with every known key replaced by ``***``."""
        for secret in self._secrets():
            if len(secret) >= 8 and secret in text:
                text = text.replace(secret, _MASK)
        return text

    def redact_data(self, data: object) -> object:
        """``data`` (dicts, lists, strings) with :meth:`redact` applied to every string."""
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, dict):
            return {k: self.redact_data(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return [self.redact_data(v) for v in data]
        return data
