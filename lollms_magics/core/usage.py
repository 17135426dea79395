"""What a session's answers cost: tokens in and out, calls and time, per backend and model.

Counts come from the answers themselves (``Response.prompt_tokens``,
``completion_tokens``, ``duration``), as the server reported them or the
model's tokenizer counted them; an answer whose server gave no count is
said so rather than guessed. Money appears only from a price table the
user gives (model -> (input, output) per million tokens): prices written
into code go stale, so there are none here.

Pictures are counted apart, per image backend and model: the requests that
returned pictures, the pictures, and the time the server took for them
(``ImageResult.duration``); a picture request that failed adds nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..response import Response
    from ..tti.base import ImageResult

__all__ = ["ImageRow", "UsageLog", "UsageRow", "check_prices"]


@dataclass
class UsageRow:
    """The totals of one backend and model."""

    binding: str
    model: str
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    uncounted: int = 0  # calls whose server reported no token counts

    def cost(self, prices: Mapping[str, tuple[float, float]]) -> float | None:
        """The cost at ``prices`` (per million tokens), or None when the model has no price."""
        price = prices.get(f"{self.binding}:{self.model}", prices.get(self.model))
        if price is None:
            return None
        return (self.prompt_tokens * price[0] + self.completion_tokens * price[1]) / 1_000_000


@dataclass
class ImageRow:
    """The pictures of one image backend and model."""

    binding: str
    model: str
    calls: int = 0
    images: int = 0
    seconds: float = 0.0


def check_prices(prices: Any) -> dict[str, tuple[float, float]]:
    """``prices`` as a model -> (input, output) table; ``ValueError`` saying what is wrong."""
    if not isinstance(prices, Mapping):
        raise ValueError("prices must be a dict: model -> (input, output) per million tokens")
    table: dict[str, tuple[float, float]] = {}
    for model, price in prices.items():
        try:
            given, made = price
            table[str(model)] = (float(given), float(made))
        except (TypeError, ValueError):
            raise ValueError(
                f"the price of {model!r} must be two numbers, (input, output) per million tokens, "
                f"not {price!r}"
            ) from None
    return table


def _pad(cells: list[str], widths: list[int]) -> list[str]:
    """The first cell (a name) to the left, the figures to the right."""
    return [c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]


class UsageLog:
    """The answers of a session added up per (binding, model); safe across threads (``--each``)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], UsageRow] = {}
        self._images: dict[tuple[str, str], ImageRow] = {}
        self._lock = threading.Lock()

    def record(self, response: Response, binding: str | None = None) -> None:
        """Add ``response`` (ended, whatever the reason) to its backend's and model's totals."""
        name = binding or response.binding
        model = response.model or "(default)"
        with self._lock:
            row = self._rows.setdefault((name, model), UsageRow(name, model))
            row.calls += 1
            if response.prompt_tokens is None and response.completion_tokens is None:
                row.uncounted += 1
            row.prompt_tokens += response.prompt_tokens or 0
            row.completion_tokens += response.completion_tokens or 0
            row.seconds += response.duration or 0.0

    def record_images(self, result: ImageResult) -> None:
        """Add the pictures of ``result`` to its image backend's and model's totals."""
        name, model = result.binding or "(unknown)", result.model or "(default)"
        with self._lock:
            row = self._images.setdefault((name, model), ImageRow(name, model))
            row.calls += 1
            row.images += len(result.images)
            row.seconds += result.duration or 0.0

    def image_rows(self) -> list[ImageRow]:
        """The pictures' totals, one row per image backend and model, in the order first used."""
        with self._lock:
            return [ImageRow(**vars(row)) for row in self._images.values()]

    def rows(self) -> list[UsageRow]:
        """The totals, one row per backend and model, in the order first used."""
        with self._lock:
            return [UsageRow(**vars(row)) for row in self._rows.values()]

    def clear(self) -> None:
        """Start counting again."""
        with self._lock:
            self._rows.clear()
            self._images.clear()

    def table(self, prices: Mapping[str, tuple[float, float]] | None = None) -> str:
        """The totals as a text table; a cost column only when ``prices`` are given; pictures below."""
        rows, pictures = self.rows(), self.image_rows()
        if not rows and not pictures:
            return "lollms: no answers yet in this session"
        parts = [self._text_table(rows, prices)] if rows else []
        if pictures:
            parts.append(_images_table(pictures))
        return "\n\n".join(parts)

    @staticmethod
    def _text_table(rows: list[UsageRow], prices: Mapping[str, tuple[float, float]] | None) -> str:
        head = ["backend:model", "calls", "tokens in", "tokens out", "seconds"]
        if prices:
            head.append("cost")
        body = []
        for row in rows:
            cells = [
                f"{row.binding}:{row.model}", str(row.calls), f"{row.prompt_tokens:,}",
                f"{row.completion_tokens:,}", f"{row.seconds:.1f}",
            ]
            if prices:
                cost = row.cost(prices)
                cells.append("no price" if cost is None else f"{cost:.4f}")
            body.append(cells)
        total = [
            "total", str(sum(r.calls for r in rows)), f"{sum(r.prompt_tokens for r in rows):,}",
            f"{sum(r.completion_tokens for r in rows):,}", f"{sum(r.seconds for r in rows):.1f}",
        ]
        if prices:
            costs = [r.cost(prices) for r in rows]
            known = [c for c in costs if c is not None]
            total.append(f"{sum(known):.4f}" + (" + unpriced" if len(known) < len(costs) else ""))
        lines = _lines([head, *body, total])
        uncounted = sum(r.uncounted for r in rows)
        if uncounted:
            lines.append(f"{uncounted} call(s) had no token counts from their server (counted as 0)")
        return "\n".join(lines)


def _images_table(rows: list[ImageRow]) -> str:
    """The pictures' totals; no cost column (the price table is per token)."""
    head = ["image backend:model", "calls", "pictures", "seconds"]
    body = [[f"{r.binding}:{r.model}", str(r.calls), str(r.images), f"{r.seconds:.1f}"] for r in rows]
    total = ["total", str(sum(r.calls for r in rows)), str(sum(r.images for r in rows)),
             f"{sum(r.seconds for r in rows):.1f}"]
    return "\n".join(_lines([head, *body, total]))


def _lines(table: list[list[str]]) -> list[str]:
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return ["  ".join(_pad(row, widths)) for row in table]
