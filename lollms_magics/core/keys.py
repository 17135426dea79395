"""API keys, kept in the session's memory and out of everything shown.

A key comes from ``%lollms key BINDING`` (typed into a hidden prompt),
:meth:`KeyStore.set`, or the binding's environment variable. It is never
written to disk, printed or put in output metadata; :meth:`KeyStore.redact`
is the last guard, applied to every prompt before it is sent and to every
message and metadata value shown. Besides the typed keys it knows the values
of ``*_KEY``, ``*_TOKEN``, ``*_SECRET`` and ``*_PASSWORD`` variables, every
binding's declared key variable, and keys written into URL query strings
(``?api_key=...``, ``&token=...``).

Keys are kept without surrounding whitespace (a variable read from a CRLF
``.env`` ends in ``\r``), and each is looked for in every spelling an error
or a saved output may give it (:func:`~lollms_magics.secret_fields.key_forms`):
a repr such as ``b'Bearer sk-...\n'``, a JSON string, a quoted URL.
"""

from __future__ import annotations

import getpass
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..errors import PromptError
from ..secret_fields import MASK, clean_key, key_forms
from .interpolate import lookup

__all__ = ["KeySnapshot", "KeyStore", "declared_key_variables", "redact_urls"]

# Environment variables whose values are treated as secrets when redacting.
_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
_MASK = MASK
_MIN_SECRET = 8  # shorter values ("1", "true") would mask ordinary text
_REFERENCE = re.compile(r"\{([^{}\s]+)\}")  # a {name} of a prompt (lookup says if it is one)
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
    """Every registered text and image binding's key variable (read when a key is first looked for).

    An image binding's may match no secret suffix (``A1111_API_AUTH``).
    """
    from ..bindings import binding_class, binding_names
    from ..errors import LollmsMagicsError
    from ..tti import image_binding_class, image_binding_names

    names = []
    classes = [(binding_class, n) for n in binding_names()]
    classes += [(image_binding_class, n) for n in image_binding_names()]
    for get, name in classes:
        try:
            key_env = get(name).key_env
        except LollmsMagicsError:  # a binding whose extra is not installed
            continue
        if key_env:
            names.append(key_env)
    return names


class KeySnapshot:
    """The spellings of every key known at one moment (:meth:`KeyStore.snapshot`)."""

    __slots__ = ("forms", "generation")

    def __init__(self, forms: tuple[str, ...], generation: int) -> None:
        self.forms = forms
        self.generation = generation


class KeyStore:
    """The keys typed in this session, by binding name."""

    def __init__(self, key_variables: Callable[[], Iterable[str]] | Iterable[str] = ()) -> None:
        self._keys: dict[str, str] = {}
        # The bindings' declared key variables: a third party's may match no
        # suffix. Given as a function, they are read on first need, so that
        # making a store imports no binding.
        self._key_variables = key_variables
        self._resolved: set[str] | None = None
        # The keys last seen and their spellings, replaced as one tuple (threads read it).
        self._cache: tuple[frozenset[str], tuple[str, ...]] = (frozenset(), ())
        # Bumped when a key is typed or forgotten: a held snapshot older than that is not used.
        self._generation = 0
        self._held = threading.local()  # the snapshot a thread holds (see held())

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
        """Keep ``key`` for ``binding`` in memory; an empty one forgets it.

        Surrounding whitespace is dropped; a key with a line break or another
        control character inside is refused (:class:`InvalidOptionError`).
        """
        key = clean_key(key, f"the key given for {binding}")
        if key:
            self._keys[binding] = key
        else:
            self._keys.pop(binding, None)
        self._generation += 1

    def ask(self, binding: str) -> bool:
        """Ask for ``binding``'s key with a hidden prompt; an empty answer forgets it.

        Returns True when a key is now kept.
        """
        self.set(binding, getpass.getpass(f"API key for {binding} (hidden, kept in memory only): "))
        return binding in self._keys

    def _forms(self) -> tuple[str, ...]:
        """Every spelling of every known key, longest first (computed again only when the keys change).

        In a thread that holds a snapshot (:meth:`held`), the snapshot's, unless
        a key was typed or forgotten since it was taken.
        """
        held: KeySnapshot | None = getattr(self._held, "snapshot", None)
        if held is not None and held.generation == self._generation:
            return held.forms
        known = {key for key in list(self._keys.values()) if len(key) >= _MIN_SECRET}
        variables = self.key_variables
        environ = os.environ
        # Names first, values only of the few secret ones: one pass over the
        # environment, decoding a value only where it may be a key.
        for name in list(environ):
            if name.endswith(_SECRET_SUFFIXES) or name in variables:
                value = environ.get(name, "").strip()  # the key a binding sends is the stripped one
                if len(value) >= _MIN_SECRET:
                    known.add(value)
        cached_keys, cached_forms = self._cache
        if known == cached_keys:
            return cached_forms
        forms = tuple(sorted({form for key in known for form in key_forms(key)}, key=len, reverse=True))
        self._cache = (frozenset(known), forms)
        return forms

    def snapshot(self) -> KeySnapshot:
        """The keys known now (typed, and read from the environment), for :meth:`held`."""
        generation = self._generation  # read first: a key typed meanwhile makes it stale, not wrong
        return KeySnapshot(self._forms(), generation)

    @contextmanager
    def held(self, snapshot: KeySnapshot | None = None) -> Iterator[KeySnapshot]:
        """Within it, this thread's key checks use ``snapshot`` (default: one taken now).

        For many requests made from one set of texts (a mapped prompt's items):
        the environment is read once for all of them instead of once per
        request. Every text is still checked, against the keys known when the
        snapshot was taken; a key typed or forgotten meanwhile (:meth:`set`)
        makes the checks read the keys again. Other threads are not affected.
        """
        snapshot = self.snapshot() if snapshot is None else snapshot
        previous = getattr(self._held, "snapshot", None)
        self._held.snapshot = snapshot
        try:
            yield snapshot
        finally:
            self._held.snapshot = previous

    def redact(self, text: str) -> str:
        """``text`` with every known key replaced by ``***``, raw, escaped or quoted."""
        for form in self._forms():
            if form in text:
                text = text.replace(form, _MASK)
        return redact_urls(text)

    def holds_secret(self, text: str) -> bool:
        """True when ``text`` contains a known key in any spelling (it would be sent and saved)."""
        return any(form in text for form in self._forms())

    def first_holding_secret(self, texts: Iterable[str]) -> int | None:
        """The position of the first of ``texts`` that holds a known key, or None.

        :meth:`holds_secret` over many texts (the prompts of a mapped cell), with
        the keys looked up once rather than once per text.
        """
        forms = self._forms()
        for position, text in enumerate(texts):
            if any(form in text for form in forms):
                return position
        return None

    def refuse(self, text: str, what: str) -> None:
        """Raise :class:`PromptError` when ``text`` holds a known key; ``what`` says where it was found.

        The one rule for everything that would be sent: prompts, image
        prompts, documents to summarize, instructions.
        """
        if self.holds_secret(text):
            raise PromptError(
                f"{what} holds an API key, which would be sent to the server and saved with the "
                "notebook; remove it (keys go in environment variables or %lollms key)"
            )

    def reference_holding_key(self, text: str, namespace: Mapping[str, Any]) -> str | None:
        """The first ``{name}`` reference of ``text`` whose value holds a known key, as ``"{name}"``."""
        for ref in _REFERENCE.findall(text):
            try:
                value = lookup(ref, namespace)
            except LookupError:
                continue
            if self.holds_secret(str(value)):
                return f"{{{ref}}}"
        return None

    def redact_data(self, data: object) -> object:
        """``data`` (dicts, lists, strings) with :meth:`redact` applied to every string."""
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, dict):
            return {k: self.redact_data(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return [self.redact_data(v) for v in data]
        return data
