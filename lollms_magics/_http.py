"""HTTP plumbing shared by the bindings: retries, error bodies, error mapping.

Kept apart from the bindings so that the policy (what is retried, how long
to wait, how a server's error body becomes one line) is written once.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from typing import TYPE_CHECKING, Any

from .errors import (
    AuthenticationError,
    BadRequestError,
    BindingError,
    RateLimitError,
    ServerError,
    UnknownModelError,
)

if TYPE_CHECKING:
    import httpx

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
RETRY_AFTER_CAP = 60.0  # a server asking for longer is reported, not slept through
BACKOFF_START, BACKOFF_MAX = 0.5, 8.0


def parse_retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``retry-after``.

    ``retry-after`` may be a number of seconds or an HTTP date.
    """
    ms: str | None = headers.get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value: str | None = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    seconds: float = when.timestamp() - (time.time() if now is None else now)
    return max(seconds, 0.0)


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with jitter for retry number ``attempt`` (0-based)."""
    delay = min(BACKOFF_START * 2.0**attempt, BACKOFF_MAX)
    return delay * (0.75 + random.random() / 4)


def error_details(body: bytes) -> tuple[str, str | None]:
    """The message and code of an error body, whatever shape the server used.

    Tries, in order: ``{"error": {"message", "code"}}`` (OpenAI, llama.cpp,
    newer vLLM), ``{"error": "..."}`` (Ollama, legacy LoLLMs), a flat
    ``{"message", "code"}`` (older vLLM), ``{"detail": ...}`` (FastAPI:
    a string or a list of validation errors), then the raw text.
    """
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return (text[:300] or "(empty body)"), None
    if not isinstance(data, dict):
        return (text[:300] or "(empty body)"), None
    error = data.get("error")
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        return str(error.get("message") or text[:300]), None if code is None else str(code)
    if isinstance(error, str) and error:
        return error, None
    if data.get("message"):
        code = data.get("code")
        return str(data["message"]), None if code is None else str(code)
    detail = data.get("detail")
    if isinstance(detail, str):
        return detail, None
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail[:3]:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
        return "; ".join(parts) or text[:300], None
    return text[:300], None


def one_line(text: str, limit: int = 300) -> str:
    """Fold ``text`` onto one line of at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_error(
    status: int,
    body: bytes,
    headers: httpx.Headers,
    *,
    binding: str,
    url: str,
    key_hint: str,
) -> BindingError:
    """Map an HTTP error status and body to the typed error, with an action to take."""
    message, code = error_details(body)
    message = one_line(message)
    where = f"{binding} at {url}"
    kw: dict[str, Any] = {"binding": binding, "url": url, "status_code": status}
    if status in (401, 403):
        return AuthenticationError(
            f"{where} refused the API key ({status}: {message}); {key_hint}", **kw
        )
    if status == 404 and (code == "model_not_found" or "model" in message.lower()):
        return UnknownModelError(f"{where}: {message}", **kw)
    if status == 429:
        if code == "insufficient_quota" or "quota" in message.lower():
            return RateLimitError(
                f"{where}: quota exhausted ({message}); check your plan and billing", **kw
            )
        wait = parse_retry_after(headers)
        when = f"; retry in {wait:.0f} s" if wait else "; wait a little and retry"
        return RateLimitError(
            f"{where} is rate limiting requests ({message}){when}", retry_after=wait, **kw
        )
    if status >= 500:
        return ServerError(f"{where} failed ({status}: {message}); check the server's log", **kw)
    return BadRequestError(f"{where} refused the request ({status}: {message})", **kw)


def should_retry(status: int, headers: httpx.Headers, code: str | None) -> bool:
    """Whether a failed request may be sent again (before any body was streamed)."""
    explicit: str | None = headers.get("x-should-retry")
    if explicit in ("true", "false"):
        return explicit == "true"
    return status in RETRY_STATUSES and code != "insufficient_quota"
