"""The hook through which record and replay sit under every binding's HTTP client.

:func:`wrap` is given the transport a client would use and returns the one it
should use. By default that is the same transport; a recorder or a player
installed with :func:`install` wraps it, so every binding and feature records
and replays without a special case of its own.

A model run in-process (the embedded llama.cpp binding) has no HTTP; it
hands each answer to :func:`run_local` instead, which a wrapper installed
with :func:`install_local` may record or replay.

An answer the reader stopped (a Stop button, Ctrl-C, a loop left early) is
recorded as stopped, not as a body that ended: a binding tells the recorder
with :func:`reader_stopped`. Replayed, such an answer gives the recorded
text and then raises :class:`RecordedStop` where more was asked for; the
binding stops the answer there, so it ends interrupted, as it did live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = [
    "STOPPED_NOTE",
    "RecordedStop",
    "current",
    "install",
    "install_local",
    "reader_stopped",
    "run_local",
    "wrap",
]

# The extension of a recorded ``httpx.Response`` that :func:`reader_stopped` calls.
STOPPED_NOTE = "lollms_magics.reader_stopped"


class RecordedStop(Exception):
    """A replayed answer went past the point where its recording was stopped.

    The reader stopped that answer while it was recorded, so there is nothing
    after it. A binding catches this, cancels its
    :class:`~lollms_magics.response.Response` and lets it end: the answer is
    incomplete and interrupted, with the finish reason ``"cancelled"``, and no
    error reaches the user.
    """

    def __init__(self) -> None:
        super().__init__("the recording of this answer was stopped here")

# (transport or None, verify, trust_env) -> the transport the client should use
Wrapper = Callable[..., Any]
_wrapper: Wrapper | None = None
# (call, run, response) -> the pieces of text: ``call`` describes the request
# (binding, model, messages, options), ``run()`` streams it from the model.
LocalWrapper = Callable[..., Any]
_local: LocalWrapper | None = None


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


def reader_stopped(http: httpx.Response) -> None:
    """Tell a recorder that the reader stopped the answer ``http`` carries (nothing when none records it).

    Call it before closing the response. Without it, a stream cut by a
    cancel looks like one the server broke, and would replay as a failure.
    """
    note = http.extensions.get(STOPPED_NOTE)
    if note is not None:
        note()


def install_local(wrapper: LocalWrapper | None) -> LocalWrapper | None:
    """Make ``wrapper`` see every in-process answer from now on; returns the previous one."""
    global _local
    previous, _local = _local, wrapper
    return previous


def run_local(call: dict[str, Any], run: Callable[[], Iterator[str]], response: Any) -> Iterator[str]:
    """The pieces of an in-process answer: ``run()``, or what the installed wrapper makes of it.

    ``call`` holds what decides the answer (``binding``, ``model``, ``messages``,
    ``options``); ``response`` is the :class:`~lollms_magics.response.Response`
    being filled, whose ``finish_reason`` and token counts a replay restores.
    """
    if _local is None:
        return run()
    pieces: Iterator[str] = _local(call, run, response)
    return pieces
