"""The base of the client's parts: a :class:`Session` for the type checker, nothing at run time.

:class:`~lollms_magics.compat.client.LollmsClient` is assembled from parts
kept by role (generation, server information, code helpers, long texts);
each part uses the session and the client's settings, declared here for
the type checker as ``Asking`` declares what it needs of a Session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["ClientRoom"]

if TYPE_CHECKING:
    from ..core.session import Session
    from ..summaries import Summary
    from .callbacks import Callback

    class ClientRoom(Session):
        """What the parts use of the client (set by ``LollmsClient.__init__``)."""

        binding_name: str
        host_address: str | None
        default_ctx_size: int | None
        default_n_predict: int | None
        default_stream: bool
        default_temperature: float | None
        default_streaming_callback: Callback | None
        last_summary: Summary | None
        user_name: str
        ai_name: str
        service_key: str | None
        _text_binding: str

        def set_model_name(self, model_name: str) -> None: ...

else:

    class ClientRoom:
        """At run time the parts are plain mixins; the client itself is the Session."""
