"""lollms-client's API over lollms-magics: ``LollmsClient``, ``MSG_TYPE`` and friends.

Scripts written for lollms-client (the course's spelling, 0.12-0.28, and
1.x's) run with ``from lollms_client import ...`` changed to
``from lollms_magics import ...`` (``lollms_client.lollms_types`` becomes
``lollms_magics.lollms_types``). See ``docs/course.md`` for each call and the
notebook magics that do the same.

This layer sits above ``core``: it uses the Session, the summarizer and the
image bindings, and nothing of the IPython layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .enums import ELF_COMPLETION_FORMAT, ELF_GENERATION_FORMAT, MSG_TYPE, SENDER_TYPES, SUMMARY_MODE

if TYPE_CHECKING:
    from .client import ClientBinding, LollmsClient
    from .refusals import LollmsDataManager, LollmsDiscussion, LollmsPersonality

__all__ = [
    "ELF_COMPLETION_FORMAT",
    "ELF_GENERATION_FORMAT",
    "MSG_TYPE",
    "SENDER_TYPES",
    "SUMMARY_MODE",
    "ClientBinding",
    "LollmsClient",
    "LollmsDataManager",
    "LollmsDiscussion",
    "LollmsPersonality",
]


def __getattr__(name: str) -> Any:
    # The client imports the Session and its helpers: loaded when first used,
    # so that `from lollms_magics.lollms_types import MSG_TYPE` stays tiny.
    if name in ("LollmsClient", "ClientBinding"):
        from . import client

        return getattr(client, name)
    if name in ("LollmsDiscussion", "LollmsDataManager", "LollmsPersonality"):  # each refuses in one line
        from . import refusals

        return getattr(refusals, name)
    raise AttributeError(f"module 'lollms_magics.compat' has no attribute {name!r}")
