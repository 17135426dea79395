"""API keys, kept in the session's memory and out of everything shown.

A key comes from ``%lollms key BINDING`` (typed into a hidden prompt),
:meth:`KeyStore.set`, or the binding's environment variable. It is never
written to disk, printed or put in output metadata; :meth:`KeyStore.redact`
is the last guard, applied to every prompt before it is sent and to every
message and metadata value shown. Besides the typed keys it knows the values
of ``*_KEY``, ``*_TOKEN``, ``*_SECRET`` and ``*_PASSWORD`` variables, every
binding's declared key variable, and keys written into URL query strings
(``?api_key=...``, ``&token=...``).
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable, Iterable, Iterator

__all__ = ["KeyStore", "declared_key_variables", "redact_urls"]

# Environment variables whose values are treated as secrets when redacting.
_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
_MASK = "***"
_MIN_SECRET = 8  # shorter values ("1", "true") would mask ordinary text
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&](?:api[_-]?key|key|token|access[_-]?token|secret|password|client[_-]?id)=)"
    r"(?P<value>[^&#\s\"']+)",
    re.IGNORECASE,
)


def redact_urls(text: str) -> str:
    """``text`` with the values of key-like URL query parameters masked."""
    if "=" not in text:
        return text
    return _QUERY_SECRET.sub(lambda m: m.group("name") + _MASK, text)


def declared_key_variables() -> list[str]:
    """Every registered binding's key variable (read when a key is first looked for)."""
    from ..bindings import binding_class, binding_names
    from ..errors import LollmsMagicsError

    names = []
    for name in binding_names():
        try:
            key_env = binding_class(name).key_env
        except LollmsMagicsError:  # a binding whose extra is not installed
            continue
        if key_env:
            names.append(key_env)
    return names


class KeyStore:
    """The keys typed in this session, by binding name."""

    def __init__(self, key_variables: Callable[[], Iterable[str]] | Iterable[str] = ()) -> None:
        self._keys: dict[str, str] = {}
        # The bindings' declared key variables: a third party's may match no
        # suffix. Given as a function, they are read on first need, so that
        # making a store imports no binding.
        self._key_variables = key_variables
        self._resolved: set[str] | None = None

    @property
    def key_variables(self) -> set[str]:
        """The variables whose values are keys besides the ``*_KEY``-like ones."""
        if self._resolved is None:
            source = self._key_variables
            self._resolved = set(source() if callable(source) else source)
        return self._resolved

    def __contains__(self, binding: str) -> bool:
        return binding in self._keys

    def get(self, binding: str) -> str | None:
        """The key typed for ``binding``, if any (the binding reads its own env var otherwise)."""
        return self._keys.get(binding)

    def set(self, binding: str, key: str | None) -> None:
        """Keep ``key`` for ``binding`` in memory; an empty one forgets it."""
        key = (key or "").strip()
        if key:
            self._keys[binding] = key
        else:
            self._keys.pop(binding, None)

    def ask(self, binding: str) -> bool:
        """Ask for ``binding``'s key with a hidden prompt; an empty answer forgets it.

        Returns True when a key is now kept.
        """
        self.set(binding, getpass.getpass(f"API key for {binding} (hidden, kept in memory only): "))
        return binding in self._keys

    def _secrets(self) -> Iterator[str]:
        yield from self._keys.values()
        for name, value in os.environ.items():
            if name.endswith(_SECRET_SUFFIXES) or name in self.key_variables:
                yield value

    def redact(self, text: str) -> str:
        """``text`` with every known key replaced by ``***``."""
        for secret in self._secrets():
            if len(secret) >= _MIN_SECRET and secret in text:
                text = text.replace(secret, _MASK)
        return redact_urls(text)

    def holds_secret(self, text: str) -> bool:
        """True when ``text`` contains a known key (it would be sent and saved)."""
        return any(len(s) >= _MIN_SECRET and s in text for s in self._secrets())

    def redact_data(self, data: object) -> object:
        """``data`` (dicts, lists, strings) with :meth:`redact` applied to every string."""
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, dict):
            return {k: self.redact_data(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return [self.redact_data(v) for v in data]
        return data
