"""The one ``httpx.Client`` a binding keeps per server, and which hosts use proxies.

A client costs tens of milliseconds to build (mostly its SSL context), so a
binding makes one and keeps it. Remote servers honour the proxy and CA
variables (``HTTPS_PROXY``, ``NO_PROXY``, ``SSL_CERT_FILE``...) as users
expect; a server on this machine never goes through a proxy: ``localhost``,
the loopback range and the unspecified addresses ``0.0.0.0`` and ``::``
(which ``OLLAMA_HOST=0.0.0.0`` puts in a URL, and which connect to this
machine). A test transport never reads the environment either.

Its connections run through :mod:`~lollms_magics.transport.cancel`, so that
cancelling an answer cuts the connection its request is on, a pooled one too.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = ["http_transport", "is_local_host", "make_client", "probe_client"]


def is_local_host(url: str) -> bool:
    """True when ``url`` names this machine (loopback, unspecified address, ``*.localhost``)."""
    import httpx

    host = httpx.URL(url).host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def http_transport(*, verify: bool, trust_env: bool) -> httpx.HTTPTransport:
    """httpx's own transport (as a client would build it), whose connections a cancel can cut."""
    import httpx

    from . import cancel

    return cancel.install(httpx.HTTPTransport(verify=verify, trust_env=trust_env, limits=_limits()))


def _limits() -> httpx.Limits:
    """No cap on connections nor on idle ones (they still close after ``keepalive_expiry``).

    Past httpx's default of 20 idle connections, the pool closes the others,
    and can close one it has just handed to a waiting request
    (encode/httpcore#1110), which then fails with "Bad file descriptor" or
    hangs until its read timeout. Each thread sends one request at a time
    (``--each --concurrency N``, the summaries' hosts), so there are never
    more connections than threads.
    """
    import httpx

    return httpx.Limits(max_connections=None, max_keepalive_connections=None)


def make_client(
    host: str,
    *,
    connect_timeout: float,
    read_timeout: float,
    transport: httpx.BaseTransport | None = None,
    verify: bool = True,
    follow_redirects: bool = False,
    capped: bool = True,
) -> httpx.Client:
    """A client for the server at ``host``; ``read_timeout`` bounds the silence between two pieces.

    Its bodies are read within :data:`~lollms_magics.transport.bounded.MAX_BODY_BYTES`
    unless ``capped`` is false, for a reader that counts against a limit of its own.
    """
    import httpx

    from . import bounded, cancel, tape

    timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=30.0, pool=30.0)
    trust_env = transport is None and not is_local_host(host)
    client = httpx.Client(
        timeout=timeout,
        limits=_limits(),  # as for a transport of ours, for the transport httpx makes here
        transport=tape.wrap(transport, verify=verify, trust_env=trust_env),
        verify=verify,
        trust_env=trust_env,
        follow_redirects=follow_redirects,
    )
    # Built by httpx, with the proxies of the environment (a transport given to
    # the client would turn those off); then made cancellable in place.
    cancel.install_client(client)
    if capped:
        bounded.install_client(client)
    return client


def probe_client(timeout: float) -> httpx.Client:
    """The short-lived client of an automatic choice: local probes, no proxy, no redirect.

    It goes through the tape hook too, so a recorded notebook makes the same
    choice when it is replayed.
    """
    import httpx

    from . import bounded, tape

    client = httpx.Client(
        timeout=httpx.Timeout(timeout), trust_env=False, follow_redirects=False,
        transport=tape.wrap(None, verify=True, trust_env=False),
    )
    bounded.install_client(client)
    return client
