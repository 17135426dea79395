"""The automatic choice of image server, for when the user has chosen none.

Every registered image binding with an ``image_priority`` takes part; the
built-ins are probed on their usual ports, all at the same time, each with a
short timeout, so a machine where nothing runs spends about one timeout:

1. LoLLMs (lollms-webui on 9600, the new server on 9642, ``LOLLMS_HOST``);
2. AUTOMATIC1111 / Forge / SD.Next on 7860 (``A1111_HOST``);
3. ComfyUI on 8188 (``COMFYUI_HOST``);
4. OpenAI, only when ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set (it costs money).

A server that runs but cannot be used as it is (A1111 started without
``--api``, a LoLLMs server that wants a key) is named in the error when
nothing else answers.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..errors import LollmsMagicsError, LollmsMagicsWarning, NoBackendError

if TYPE_CHECKING:
    from ..bindings.base import Probe
    from .base import ImageBinding

__all__ = ["NO_IMAGE_BACKEND", "choose_image_binding"]

NO_IMAGE_BACKEND = (
    "no image server found: start LoLLMs (9600 or 9642), AUTOMATIC1111 with --api (7860) or "
    "ComfyUI (8188), set OPENAI_API_KEY, or name one with %lollms tti use BINDING --host URL"
)


def _candidates() -> list[type[ImageBinding]]:
    from . import image_binding_class, image_binding_names

    found: list[tuple[int, type[ImageBinding]]] = []
    for name in image_binding_names():
        try:
            cls = image_binding_class(name)
        except LollmsMagicsError:
            continue
        if cls.image_priority is not None:
            found.append((cls.image_priority, cls))
    return [cls for _, cls in sorted(found, key=lambda item: item[0])]


def _probe(cls: type[ImageBinding], client: object) -> Probe | None:
    try:
        return cls.probe_image(client)  # type: ignore[arg-type]
    except Exception as exc:  # one binding's bug must not hide the others
        warnings.warn(
            f"the image choice skipped {cls.name!r}: its probe failed ({exc})",
            LollmsMagicsWarning,
            stacklevel=2,
        )
        return None


def choose_image_binding(timeout: float = 0.5) -> tuple[str, str | None, str | None, str]:
    """``(name, host, model, reason)`` of the image server to use; NoBackendError when none is usable."""

    candidates = _candidates()
    from ..transport.client import probe_client

    client = probe_client(timeout)
    pool = ThreadPoolExecutor(max_workers=max(1, len(candidates)), thread_name_prefix="lollms-image-probe")
    unusable: list[str] = []
    try:
        futures = [(cls, pool.submit(_probe, cls, client)) for cls in candidates]
        for cls, future in futures:  # in order of preference
            found = future.result()
            if found is None:
                continue
            if not found.usable:
                unusable.append(found.reason)
                continue
            return cls.name, found.host, found.model, found.reason
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        client.close()
    if unusable:
        raise NoBackendError(f"no usable image server: {'; '.join(unusable)}")
    raise NoBackendError(NO_IMAGE_BACKEND)
