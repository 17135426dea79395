"""How a server's error answer becomes one typed error with one line to act on.

Servers shape their error bodies in many ways (OpenAI, llama.cpp, vLLM,
Ollama, FastAPI, plain text); :func:`error_details` reads them all, and
:func:`status_error` maps the status to the error class of
:mod:`lollms_magics.errors` with the action to take.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import (
    AuthenticationError,
    BadRequestError,
    BindingError,
    RateLimitError,
    ServerError,
    UnknownModelError,
)
from .retry import parse_retry_after

if TYPE_CHECKING:
    import httpx

__all__ = ["error_details", "one_line", "status_error"]


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


