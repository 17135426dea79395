"""``%lollms sent`` and ``%lollms usage``: the exact last request, and the totals (text and pictures).

Both read what the session kept (:attr:`Session.last_request`,
:attr:`Session.usage`); nothing is asked of a server.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from ..core.sent import describe
from ..core.usage import check_prices
from .commands import COMMANDS, Command, Magics
from .plain import say

__all__: list[str] = []


def _sent(magics: Magics, args: Any, cell: str | None) -> None:
    request = magics.session.last_request
    if request is None:
        say("lollms: nothing sent yet in this session")
        return
    say(describe(request, magics.session.keys.redact))


def _usage(magics: Magics, args: Any, cell: str | None) -> None:
    usage = magics.session.usage
    if args.words == ["reset"]:
        usage.clear()
        say("lollms: usage counted from zero again")
        return
    if args.words:
        raise UsageError("usage: %lollms usage [reset]")
    try:
        prices = check_prices(getattr(magics, "prices", None) or {})
    except ValueError as exc:
        raise UsageError(f"%config LollmsMagics.prices: {exc}") from None
    say(usage.table(prices))


COMMANDS["sent"] = Command(
    _sent, (0, 0), "%lollms sent",
    "the last request as sent: binding, model, host, messages, options (keys, images, long texts elided)",
)
COMMANDS["usage"] = Command(
    _usage, (0, 1), "%lollms usage [reset]",
    "tokens in and out, calls and time per backend and model (cost with %config LollmsMagics.prices); "
    "pictures, calls and time per image backend and model",
)
