"""What a replay file may hold: requests made binding-independent and free of secrets.

A request is matched by its method, path, query and a canonical form of its
JSON body (keys sorted, numbers parsed), never by host, port or headers, so a
file recorded against one machine's server replays anywhere. Before anything
is stored or matched:

- request headers are dropped (``Authorization`` and every other one);
- ``client_id`` fields and query parameters are removed at any depth (legacy
  LoLLMs image routes and ComfyUI put a per-session id in bodies);
- fields named like secrets (``api_key``, ``openai_api_key``, ``token``,
  ``password``..., by :func:`~lollms_magics.secret_fields.is_secret_field`)
  are masked when they hold text, and so are the values of settings listed
  as ``{"name": ..., "value": ...}`` entries (lollms-webui's image settings);
- every string loses the secrets known here: the key-like headers of the
  request being recorded, the values of ``*_KEY``, ``*_TOKEN``, ``*_SECRET``
  and ``*_PASSWORD`` variables, key-like URL query values, and whatever an
  optional ``redact`` callable (the session's key store) masks;
- strings longer than :data:`LONG_STRING` characters (documents, images as
  base64) are replaced by their SHA-256, which keeps the file small and still
  matches exactly.

Masking works on text that may be raw JSON (a streamed body is scrubbed
chunk by chunk, undecoded): a masked query value never takes a backslash or
a JSON escape apart, so what was valid JSON stays valid JSON.

This module is the replay layer's own small scrubber: it cannot import the
core's key store (core sits above it), so it takes that store's ``redact``
as a callable instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..secret_fields import is_secret_field, is_secret_setting, key_forms
from .tools import matching_form

__all__ = ["LONG_STRING", "MASK", "Scrubber", "canonical", "header_secrets", "prompt_of", "request_key"]

MASK = "***"
LONG_STRING = 1000
_MIN_SECRET = 8  # shorter values ("1", "true") would mask ordinary text
_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie"}
)
_DROPPED_FIELDS = frozenset({"client_id", "clientid", "client-id"})
# A key-like query value, in a URL that may sit inside raw JSON text. The value
# is made of plain characters and whole JSON escapes: \\ (a backslash), \/ and
# \uXXXX are taken as units, except the \uXXXX of what ends a value unescaped
# (control characters, line separators, quotes, & and #, which Go's encoder,
# Ollama's, writes as \u0026). Any other escape (\" closing the string, \n)
# ends the value, its backslash left in place: a masked value never breaks JSON.
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&](?:api[_-]?key|key|token|access[_-]?token|secret|password)=)"
    r"(?P<value>(?:[^&#\s\"'\\]|\\[\\/]|\\u(?!00[01]|002[2367]|0085|2028|2029)[0-9a-fA-F]{4})+)",
    re.IGNORECASE,
)
_SCHEME = re.compile(r"^(?:bearer|basic|token)\s+", re.IGNORECASE)


def header_secrets(headers: Iterable[tuple[str, str]]) -> list[str]:
    """The secret values in request ``headers`` (``Authorization: Bearer K`` gives K and the whole value)."""
    found: list[str] = []
    for name, value in headers:
        if name.lower() in _SECRET_HEADERS and value:
            found.append(value)
            bare = _SCHEME.sub("", value).strip()
            if bare and bare != value:
                found.append(bare)
    return found


def _environment_secrets() -> list[str]:
    return [value for name, value in os.environ.items() if name.upper().endswith(_SECRET_SUFFIXES)]


class Scrubber:
    """Masks secrets in the strings and drops ``client_id`` from the data it is given.

    ``secrets`` are extra values to mask (a request's key headers);
    ``redact`` is applied to every string after them.
    """

    def __init__(self, secrets: Iterable[str] = (), redact: Callable[[str], str] | None = None) -> None:
        # Each secret in the spellings it takes once escaped or quoted too (a key in raw JSON text).
        known = {
            form
            for secret in (*secrets, *_environment_secrets())
            if len(secret) >= _MIN_SECRET
            for form in key_forms(secret)
        }
        # Longest first, so that a key containing another is masked whole.
        self.secrets = sorted(known, key=len, reverse=True)
        self.redact = redact

    def text(self, text: str) -> str:
        """``text`` with every known secret and key-like query value masked."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if "=" in text:
            text = _QUERY_SECRET.sub(lambda m: m.group("name") + MASK, text)
        return self.redact(text) if self.redact is not None else text

    def data(self, data: Any) -> Any:
        """``data`` (JSON values) with ``client_id`` dropped, secret fields masked, strings scrubbed."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, Mapping):
            kept: dict[str, Any] = {}
            for name, value in data.items():
                if str(name).lower() in _DROPPED_FIELDS:
                    continue
                if value and is_secret_setting(str(name), value):
                    kept[name] = MASK
                else:
                    kept[name] = self.data(value)
            setting = kept.get("name")
            if isinstance(setting, str) and kept.get("value") and is_secret_setting(setting, kept["value"]):
                kept["value"] = MASK  # a settings template entry: {"name": "openai_api_key", "value": ...}
            return kept
        if isinstance(data, (list, tuple)):
            return [self.data(item) for item in data]
        return data

    def query(self, pairs: Iterable[tuple[str, str]]) -> list[list[str]]:
        """Query parameters, sorted, without ``client_id`` and with secret values masked."""
        kept = []
        for name, value in pairs:
            if name.lower() in _DROPPED_FIELDS:
                continue
            masked = MASK if is_secret_field(name) else self.text(value)
            kept.append([name, masked])
        return sorted(kept)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _shorten(data: Any) -> Any:
    """``data`` with long strings replaced by their digest and length."""
    if isinstance(data, str):
        if len(data) <= LONG_STRING:
            return data
        return f"{_digest(data.encode('utf-8'))} ({len(data)} characters)"
    if isinstance(data, dict):
        return {name: _shorten(value) for name, value in data.items()}
    if isinstance(data, list):
        return [_shorten(item) for item in data]
    return data


def _body_key(body: bytes, content_type: str, scrubber: Scrubber) -> Any:
    """A stored form of a request body: canonical JSON, or the digest of other bytes."""
    try:
        data = json.loads(body)
    except ValueError:
        pass
    else:
        return _shorten(scrubber.data(data))
    boundary = re.search(r"boundary=\"?([^\";]+)", content_type)
    if boundary:  # a multipart boundary is random: the same form must match
        body = body.replace(boundary.group(1).encode("latin-1"), b"BOUNDARY")
    return _digest(body)


def request_key(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    body: bytes,
    content_type: str,
    scrubber: Scrubber,
) -> dict[str, Any]:
    """What identifies a request in a replay file (no host, no headers, no secret)."""
    key: dict[str, Any] = {"method": method.upper(), "path": scrubber.text(path)}
    pairs = scrubber.query(query)
    if pairs:
        key["query"] = pairs
    if body:
        key["body"] = _body_key(body, content_type, scrubber)
    return key


def canonical(key: Any) -> str:
    """The string a key is matched by: JSON with sorted keys and no spaces.

    The content of ``"tool"`` messages is left out: replayed, the notebook's
    functions run again and may return something else, and the model's
    recorded answer must still be found (:mod:`.tools` says what changed).
    """
    return json.dumps(matching_form(key), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("text")
        )
    return ""


def prompt_of(key: Mapping[str, Any]) -> str:
    """The prompt a request carries (its last user message, or its ``prompt`` field), else ''."""
    body = key.get("body", key)
    if not isinstance(body, Mapping):
        return ""
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return _content_text(message.get("content"))
    for field in ("prompt", "text", "input"):
        value = body.get(field)
        if isinstance(value, str) and value:
            return value
    return ""
