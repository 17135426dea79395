"""The summarize panel's backend, host, model and context choices, and the line saying what a run will use.

The panel's choice applies to its own runs only, as ``-b``, ``--host``,
``-m`` and ``--ctx-size`` do for ``%lollms summarize``; left empty, each
takes the session's (its default backend, its model) or the server's (its
first model, the window the binding knows, else 2048 tokens). The models
are listed in the background by Refresh, when the backend or the host
changes, and when the panel opens on a backend whose model is not named
(a panel opened on a named model sends nothing until used); the line
under the choices says which backend, model, host and context the next
run uses.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..bindings import binding_class, binding_names, get_binding
from ..core.status import safe_host
from ..errors import LollmsMagicsError
from ..summaries.budget import DEFAULT_CTX_SIZE
from .common import Worker
from .settings import QUICK, listed_as

if TYPE_CHECKING:
    from ..core.session import Session
    from ..core.target import Target

__all__ = ["BackendChoice"]

SESSION = "the session's"
MAX_CTX = 1 << 21  # two million tokens: above any model's window


@dataclass
class _Seen:
    """What the last look at the chosen backend found."""

    name: str
    host: str
    default_model: str | None  # the model used when none is chosen (the session's, else the server's first)
    known_ctx: int | None  # the window the binding knows without asking


class BackendChoice:
    """The backend, host, model and context controls, and the line saying what they resolve to."""

    def __init__(self, w: Any, session: Session, on_error: Any) -> None:
        self.w = w
        self.session = session
        self.backend = w.Dropdown(options=[(SESSION, ""), *((n, n) for n in binding_names())], value="",
                                  description="backend")
        self.host = w.Text(description="host", placeholder="the session's, else the backend's usual one",
                           continuous_update=False, layout=w.Layout(width="420px"))
        self.model = w.Dropdown(options=[("the backend's default", "")], value="", description="model")
        self.ctx = w.BoundedIntText(value=0, min=0, max=MAX_CTX, step=1024, description="context",
                                    tooltip="the model's window in tokens; 0: what the binding says, "
                                            "else 2048")
        self.refresh = w.Button(description="Refresh", icon="refresh", tooltip="list the server's models")
        self.uses = w.HTML()
        for name in ("backend", "host", "model", "refresh", "ctx", "uses"):
            getattr(self, name).add_class(f"lollms-summarize-{name}")
        self._seen: _Seen | None = None
        self._asked = 0  # looks asked for; only the newest fills the list and the line
        self._lister = Worker("lollms-summarize-models", on_error)
        self.backend.observe(lambda _: self.look(), names="value")
        self.host.observe(lambda _: self.look(), names="value")
        self.model.observe(lambda _: self.describe(), names="value")
        self.ctx.observe(lambda _: self.describe(), names="value")
        self.refresh.on_click(lambda _: self.look())
        self.widget = w.VBox([w.HBox([self.backend, self.host]), w.HBox([self.model, self.refresh, self.ctx]),
                              self.uses])
        configured = session.configured()
        self.look(listing=configured is None or configured.model is None)

    def chosen(self) -> tuple[str | None, str | None, str | None]:
        """The binding, model and host chosen (None: the session's or the server's)."""
        return self.backend.value or None, self.model.value or None, self.host.value.strip() or None

    def target(self) -> Target:
        """Where the next run goes (the session's automatic choice is made here when needed)."""
        return self.session.target(*self.chosen())

    def ctx_size(self) -> int | None:
        return self.ctx.value or None

    def look(self, *, listing: bool = True) -> None:
        """Find what the chosen backend resolves to and (``listing``) its models, in the background."""
        self._asked += 1
        asked = self._asked
        self._seen = None
        self.model.options, self.model.value = [("the backend's default", "")], ""
        self.uses.value = _line("looking at the backend…")
        self._lister = Worker("lollms-summarize-models", self._lister.on_error)
        self._lister.start(lambda: self._look(asked, listing))

    def wait(self, timeout: float | None = 10.0) -> bool:
        """Wait for the model listing under way (tests)."""
        return self._lister.wait(timeout)

    def _look(self, asked: int, listing: bool) -> None:
        name, _, host = self.chosen()
        try:
            target = self.session.target(name, None, host)
            # A binding of its own, never used to send: opening the panel leaves the session's as they are.
            binding = get_binding(target.name, target.host, target.model, self.session.keys.get(target.name))
            try:
                seen = _Seen(target.name, binding.host, target.model, _known_ctx(binding))
            finally:
                binding.close()
        except LollmsMagicsError as exc:
            if asked == self._asked:
                problem = self.session.keys.redact(str(exc))
                self.uses.value = _line(f"no backend to use: {problem}", error=True)
            return
        found, problem = [], ""
        try:
            if listing:
                found = _models(self.session, target)
        except LollmsMagicsError as exc:
            problem = f" (could not list the models: {exc})"
        if asked != self._asked:  # another backend or host was chosen meanwhile
            return
        if seen.default_model is None and found:
            seen.default_model = f"{found[0]}, the first listed"
        elif seen.default_model is not None:
            seen.default_model = listed_as(seen.default_model, found) or seen.default_model
        self._seen = seen
        default = f"default ({seen.default_model})" if seen.default_model else "the server's default"
        self.model.options = [(default, ""), *((m, m) for m in found)]
        self.model.value = ""
        self.describe(problem)

    def ran(self, target: Target, binding: Any) -> None:
        """Say what a run is using now (the session may have changed since the last look)."""
        seen = _Seen(target.name, binding.host, target.model, _known_ctx(binding))
        if seen.default_model is None and self._seen is not None and self._seen.name == seen.name:
            seen.default_model = self._seen.default_model  # the server's first, as listed
        self._seen = seen
        self._relabel()
        self.describe()

    def _relabel(self) -> None:
        """Name the session's model in the menu's default entry, as the line under it does."""
        seen = self._seen
        options = list(self.model.options)
        if seen is None or not options or options[0][1] != "":
            return
        label = f"default ({seen.default_model})" if seen.default_model else "the server's default"
        if options[0][0] != label:
            value = self.model.value
            self.model.options = [(label, ""), *options[1:]]
            self.model.value = value

    def describe(self, problem: str = "") -> None:
        """Say in the line under the choices what the next run uses."""
        seen = self._seen
        if seen is None:
            return
        model = self.model.value or seen.default_model or "the server's default"
        ctx = self.ctx.value
        if ctx:
            window = f"context {ctx} tokens"
        elif seen.known_ctx:
            window = f"context {seen.known_ctx} tokens (the model's)"
        else:
            window = f"context {DEFAULT_CTX_SIZE} tokens (the default: set the model's window if larger)"
        text = f"uses {seen.name} · model {model} · {safe_host(seen.host)} · {window}{problem}"
        self.uses.value = _line(self.session.keys.redact(text))

    def used(self, binding: Any) -> dict[str, Any]:
        """What a run used: its binding, model and window, for the record."""
        return {"binding": getattr(binding, "name", None), "model": getattr(binding, "model", None),
                "ctx_size": self.ctx_size() or _known_ctx(binding) or DEFAULT_CTX_SIZE}


def _known_ctx(binding: Any) -> int | None:
    size = getattr(binding, "context_size", None)
    return size if isinstance(size, int) and size > 0 else None


def _models(session: Session, target: Target) -> list[str]:
    """The names the server lists, asked with short timeouts (a panel says "does not answer" in seconds)."""
    from ..bindings.http import HTTPBinding

    cls = binding_class(target.name)
    probe = get_binding(target.name, target.host, None, session.keys.get(target.name),
                        **(QUICK if issubclass(cls, HTTPBinding) else {}))
    try:
        return [m.name for m in probe.list_models()]
    finally:
        probe.close()


def _line(text: str, *, error: bool = False) -> str:
    color = "#b00020" if error else "#555"
    return f'<span style="color:{color}">{html.escape(text)}</span>'
