"""The hook through which record and replay sit under every binding's HTTP client.

:func:`wrap` is given the transport a client would use and returns the one it
should use. By default that is the same transport; a recorder or a player
installed with :func:`install` wraps it, so every binding and feature records
and replays without a special case of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = ["current", "install", "wrap"]

# (transport or None, verify, trust_env) -> the transport the client should use
Wrapper = Callable[..., Any]
_wrapper: Wrapper | None = None


def install(wrapper: Wrapper | None) -> Wrapper | None:
    """Make ``wrapper`` wrap the transport of every client made from now on; returns the previous one."""
    global _wrapper
    previous, _wrapper = _wrapper, wrapper
    return previous


def current() -> Wrapper | None:
    """The installed wrapper, if any."""
    return _wrapper


def wrap(
    transport: httpx.BaseTransport | None, *, verify: bool, trust_env: bool
) -> httpx.BaseTransport | None:
    """The transport a new client uses: ``transport``, or the installed wrapper around it."""
    if _wrapper is None:
        return transport
    wrapped: httpx.BaseTransport | None = _wrapper(transport, verify=verify, trust_env=trust_env)
    return wrapped
