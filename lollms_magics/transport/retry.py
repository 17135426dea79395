"""When a failed request is sent again, and how long to wait first.

The policy follows the OpenAI SDK's, which most servers expect: connection
failures, 408, 409, 429 and 5xx are retried before any body is streamed,
``x-should-retry`` has the last word, and a server's ``Retry-After`` (seconds
or an HTTP date) or ``retry-after-ms`` is honoured up to a cap. Anything
unparsable or out of range falls back to exponential backoff with jitter.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = [
    "BACKOFF_MAX",
    "BACKOFF_START",
    "RETRY_AFTER_CAP",
    "RETRY_STATUSES",
    "backoff_delay",
    "parse_retry_after",
    "should_retry",
]

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
RETRY_AFTER_CAP = 60.0  # a server asking for longer is reported, not slept through
BACKOFF_START, BACKOFF_MAX = 0.5, 8.0


def _seconds(text: str, scale: float = 1.0) -> float | None:
    """A finite, non-negative number of seconds, or None for anything else (nan, inf, -1, junk)."""
    try:
        value = float(text) * scale
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


def parse_retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from ``retry-after-ms`` or ``retry-after``.

    ``retry-after`` may be a number of seconds or an HTTP date. A value that
    cannot be read as a finite, non-negative wait gives None, so the caller
    uses its own backoff.
    """
    ms: str | None = headers.get("retry-after-ms")
    if ms:
        wait = _seconds(ms, 1 / 1000)
        if wait is not None:
            return wait
    value: str | None = headers.get("retry-after")
    if not value:
        return None
    wait = _seconds(value)
    if wait is not None:
        return wait
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # older Pythons return None for some malformed dates
        return None
    seconds: float = when.timestamp() - (time.time() if now is None else now)
    return max(seconds, 0.0)


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with jitter for retry number ``attempt`` (0-based)."""
    delay = min(BACKOFF_START * 2.0**attempt, BACKOFF_MAX)
    return delay * (0.75 + random.random() / 4)


def should_retry(status: int, headers: httpx.Headers, code: str | None) -> bool:
    """Whether a failed request may be sent again (before any body was streamed)."""
    explicit: str | None = headers.get("x-should-retry")
    if explicit in ("true", "false"):
        return explicit == "true"
    return status in RETRY_STATUSES and code != "insufficient_quota"
