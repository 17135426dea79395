"""What counts as a secret, decided in one place low enough for every layer.

Three rules, applied the same way by the bindings, the key store, the panels,
the magics and the replay files:

* :func:`clean_key`: a key as it enters (an environment variable, a typed
  key, an ``api_key=`` argument) loses its surrounding whitespace, since a
  key read from a file or a CRLF ``.env`` ends in a line break; a key with a
  control character inside is refused in one line that does not show it;
* :func:`is_secret_setting` and :func:`mask_settings`: a server setting
  whose name says it holds a secret (``openai_api_key``, ``hf_token``,
  ``client_id``...) is shown masked, wherever settings are shown;
* :func:`key_forms`: the spellings a key takes once quoted or escaped (a
  Python or bytes repr, JSON, URL quoting, HTML), which redaction must look
  for as well as the key itself.
"""

from __future__ import annotations

import functools
import html
import itertools
import json
import re
from typing import Any
from urllib.parse import quote, quote_plus

from .errors import InvalidOptionError

__all__ = ["MASK", "clean_key", "is_secret_field", "is_secret_setting", "key_forms", "mask_settings"]

MASK = "***"

# C0 and C1 control characters: a header cannot carry them, and no key holds one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The words of a setting name: snake_case, kebab-case, camelCase and dotted names.
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_SECRET_WORDS = frozenset({
    "key", "apikey", "token", "secret", "password", "passwd", "pwd", "passphrase",
    "credential", "credentials", "auth", "authorization", "cookie", "clientid",
})


def clean_key(key: str | None, where: str) -> str | None:
    """``key`` without surrounding whitespace, or None when nothing is left.

    ``where`` names where the key came from (``"OPENAI_API_KEY"``, ``"the key
    given with api_key="``) for the one-line :class:`InvalidOptionError`
    raised when a control character is left inside it; the key itself is
    never put in the message.
    """
    if key is None:
        return None
    if not isinstance(key, str):
        raise InvalidOptionError(f"{where} must be text, not {type(key).__name__}")
    key = key.strip()
    if not key:
        return None
    bad = _CONTROL.search(key)
    if bad is not None:
        what = "a line break" if bad.group() in "\r\n" else "a control character"
        raise InvalidOptionError(
            f"{where} holds {what} inside the key, which no HTTP header can carry; "
            "give the key alone, on one line (it is not shown here)"
        )
    return key


def is_secret_field(name: str) -> bool:
    """Whether a field or setting called ``name`` holds a secret, by the words of its name.

    ``api_key``, ``openai_api_key``, ``apiKey``, ``hf_token``, ``password``,
    ``client_id`` do; ``max_tokens``, ``keyedit_precision``, ``steps`` do not.
    """
    words = [w.lower() for w in _WORDS.findall(name)]
    if any(w in _SECRET_WORDS for w in words):
        return True
    return ("client", "id") in itertools.pairwise(words)


def is_secret_setting(name: str, value: Any) -> bool:
    """Whether a setting is hidden: its name says secret and its value could be one (text or nothing)."""
    return isinstance(value, str | None) and is_secret_field(name)


def mask_settings(settings: Any) -> Any:
    """A copy of ``settings`` with the values of secret settings replaced by :data:`MASK`.

    Both shapes servers use are read: a template (a list of ``{"name",
    "value", ...}`` entries, lollms-webui) and a plain ``{name: value}``
    object (A1111, ComfyUI), at any depth. Empty values stay empty, so that
    "not set" still shows.
    """
    if isinstance(settings, list):
        return [mask_settings(item) for item in settings]
    if not isinstance(settings, dict):
        return settings
    name = settings.get("name")
    if isinstance(name, str) and "value" in settings:  # a template entry
        if settings["value"] and is_secret_setting(name, settings["value"]):
            return {**settings, "value": MASK}
        return dict(settings)
    return {
        key: MASK if value and is_secret_setting(str(key), value) else mask_settings(value)
        for key, value in settings.items()
    }


@functools.lru_cache(maxsize=256)
def key_forms(secret: str) -> tuple[str, ...]:
    """``secret`` and the spellings it takes once quoted or escaped, longest first.

    A key that reached a repr (``b'Bearer sk-...'``), a JSON string, a URL
    or an HTML page may be written with escapes; each such spelling is
    listed once, so that redaction masks them all.
    """
    escaped = secret.encode("unicode_escape").decode("ascii")
    forms = {
        secret,
        escaped,  # a Python str repr, either quote
        escaped.replace("'", "\\'"),
        escaped.replace('"', '\\"'),
        repr(secret.encode("utf-8"))[2:-1],  # a bytes repr (a header in an httpx error)
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        html.escape(secret),
    }
    return tuple(sorted(forms, key=len, reverse=True))
