"""The automatic choice of backend, for when the user has chosen none.

Every registered binding that declares an ``auto_priority`` takes part,
third-party ones included; the built-ins come in this order:

1. a LoLLMs server on its default ports (lollms-webui on 9600, the new
   server on 9642);
2. Ollama (``OLLAMA_HOST``, else ``http://127.0.0.1:11434``) with at least
   one model pulled;
3. an OpenAI-compatible endpoint, when ``OPENAI_API_KEY`` or
   ``OPENAI_BASE_URL`` is set;
4. Google Colab's model endpoint, when Colab's variables say where it is
   and its token is found (:mod:`lollms_magics.bindings.colab`);
5. the embedded SmolLM2-135M model, when the ``local`` extra is installed.

The probes run at the same time, each with a short timeout, so a machine
where nothing runs spends about one timeout on probing; the priorities still
decide between the backends that answered. A server that runs but cannot be
used (a LoLLMs server that wants a key, an Ollama without models) is named
in the error when nothing else is found.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import LollmsMagicsError, LollmsMagicsWarning, NoBackendError

if TYPE_CHECKING:
    from ..bindings.base import Binding, Probe

__all__ = ["NO_BACKEND_MESSAGE", "AutoChoice", "choose_binding"]

NO_BACKEND_MESSAGE = (
    "no model found: start LoLLMs (port 9600 or 9642) or Ollama (`ollama serve`, then "
    "`ollama pull <model>`), set OPENAI_API_KEY or OPENAI_BASE_URL for an OpenAI-compatible "
    "server, or install the embedded model with pip install 'lollms-magics[local]'"
)


@dataclass(frozen=True)
class AutoChoice:
    """The backend chosen automatically, and why (shown by ``%lollms status``)."""

    name: str
    host: str | None
    model: str | None
    reason: str


def _candidates() -> list[tuple[str, type[Binding]]]:
    """The bindings that take part, in order of preference."""
    from ..bindings import binding_class, binding_names

    found: list[tuple[int, str, type[Binding]]] = []
    for name in binding_names():
        try:
            cls = binding_class(name)
        except LollmsMagicsError:  # a binding whose extra is not installed
            continue
        if cls.auto_priority is not None:
            found.append((cls.auto_priority, name, cls))
    return [(name, cls) for _, name, cls in sorted(found, key=lambda item: item[0])]


def _run_probe(cls: type[Binding], client: object) -> Probe | None:
    try:
        return cls.probe(client)  # type: ignore[arg-type]
    except Exception as exc:  # a third-party probe's bug must not hide the others
        warnings.warn(
            f"the automatic choice skipped binding {cls.name!r}: its probe failed ({exc})",
            LollmsMagicsWarning,
            stacklevel=2,
        )
        return None


def choose_binding(timeout: float = 0.5) -> AutoChoice:
    """Find the backend to use when none was chosen; see the module docstring for the order.

    ``timeout`` bounds each HTTP probe (connect and read); the probes run
    concurrently. Raises :class:`~lollms_magics.errors.NoBackendError` when
    nothing is usable, naming what runs but needs something.
    """

    candidates = _candidates()
    from ..transport.client import probe_client

    client = probe_client(timeout)
    pool = ThreadPoolExecutor(max_workers=max(1, len(candidates)), thread_name_prefix="lollms-probe")
    unusable: list[str] = []
    silent: list[str] = []  # bindings whose probe found nothing
    try:
        futures = [(name, pool.submit(_run_probe, cls, client)) for name, cls in candidates]
        # Wait in order of preference: a later probe's answer matters only
        # when every earlier one came back empty.
        for name, future in futures:
            found = future.result()
            if found is None:
                silent.append(name)
                continue
            if not found.usable:
                unusable.append(found.reason)
                continue
            reason = found.reason
            if silent:
                reason = f"{reason}; nothing answered for {', '.join(silent)}"
            if unusable:
                reason = f"{reason}; {'; '.join(unusable)}"
            return AutoChoice(name, found.host, found.model, reason)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        client.close()
    if unusable:
        raise NoBackendError(f"no usable model: {'; '.join(unusable)}")
    raise NoBackendError(NO_BACKEND_MESSAGE)
