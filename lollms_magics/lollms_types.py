"""The course's ``lollms_client.lollms_types``: ``from lollms_magics.lollms_types import MSG_TYPE``."""

from __future__ import annotations

from .compat.enums import ELF_COMPLETION_FORMAT, ELF_GENERATION_FORMAT, MSG_TYPE, SENDER_TYPES, SUMMARY_MODE

__all__ = ["ELF_COMPLETION_FORMAT", "ELF_GENERATION_FORMAT", "MSG_TYPE", "SENDER_TYPES", "SUMMARY_MODE"]
