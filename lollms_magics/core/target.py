"""Where a request goes: a binding, a model, a host, and why they were chosen."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Target"]


@dataclass(frozen=True)
class Target:
    """Which binding, model and host a prompt goes to, and why."""

    name: str
    model: str | None
    host: str | None
    reason: str

    @property
    def label(self) -> str:
        return f"{self.name}:{self.model}" if self.model else self.name
