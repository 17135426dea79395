"""The settings panel: binding, host, key, model and options, made the session's default by Use.

The API key field hides what is typed, and holds it only until the kernel
receives it: the value moves at once into the session's key store (memory
only) and the field is cleared, so no widget state saved with the notebook
ever carries it. A binding that takes no key (Ollama, the embedded model)
has its key field disabled, saying so.

The model list comes from the server: asked in the background as soon as
the panel opens on a chosen binding, and again by Refresh, with the
server's error shown in the panel's status line when it does not answer.
The model in use stays selected whatever the server lists: under the
server's spelling when it names it differently (Ollama's ``slow:latest``
for ``slow``), else as an entry of its own.

Use leaves one line in the cell's output, updated by each later Use: the
record of the settings in force, not a log of every click.
"""

from __future__ import annotations

from typing import Any

from ..bindings import binding_class, binding_names, get_binding
from ..core.status import safe_host
from ..errors import LollmsMagicsError
from ..options import OPTIONS, OptionSpec, validate_options
from .common import Panel, Worker

__all__ = ["SettingsPanel"]

AUTO = "auto"
DEFAULT_MODEL = ("the server's default", "")
# The value an option's box starts from when the user ticks it (the server's usual defaults).
START: dict[str, Any] = {
    "n_predict": 512, "temperature": 0.7, "top_k": 40, "top_p": 0.9, "repeat_penalty": 1.1,
    "repeat_last_n": 64, "seed": 0, "ctx_size": 4096, "stop": "",
}
# Quick to give up: a panel must say "does not answer" in seconds, not after the retries.
QUICK = {"connect_timeout": 2.0, "read_timeout": 10.0, "max_retries": 0}
KEY_PLACEHOLDER = "hidden; kept in memory only"


def _plain_name(model: str) -> str:
    """A model name as a comparison sees it: case folded, without Ollama's default ``:latest`` tag."""
    name = model.strip().casefold()
    return name.removesuffix(":latest")


def listed_as(model: str, found: list[str]) -> str | None:
    """The name under which the server lists ``model`` (itself, or another case or tag spelling), if any."""
    if model in found:
        return model
    plain = _plain_name(model)
    return next((name for name in found if _plain_name(name) == plain), None)


def takes_key(name: str) -> bool:
    """Whether binding ``name`` sends an API key: only those that declare a key variable do."""
    try:
        return binding_class(name).key_env is not None
    except LollmsMagicsError:
        return True  # an unknown binding: do not decide for it (its error is shown elsewhere)


class SettingsPanel(Panel):
    """Choose the backend and the options every ``%%lollms`` cell and panel then uses."""

    kind = "settings"

    def _build(self) -> list[Any]:
        w, chosen = self.w, self.session.configured()
        names = [AUTO, *binding_names()]
        first = chosen.name if chosen and chosen.name in names else AUTO
        self.binding = w.Dropdown(options=names, value=first, description="binding")
        wide = w.Layout(width="420px")
        self.host = w.Text(value=(chosen.host or "") if chosen else "", description="host", layout=wide)
        self.key = w.Password(value="", description="API key", continuous_update=False,
                              placeholder=KEY_PLACEHOLDER, layout=wide)
        self._pending_key: str | None = None  # moved out of the widget at once: never in its state
        self.key.observe(self._on_key, names="value")
        models = [DEFAULT_MODEL] + ([(chosen.model, chosen.model)] if chosen and chosen.model else [])
        self.model = w.Dropdown(options=models, value=models[-1][1], description="model")
        self.model.add_class("lollms-settings-model")
        self.refresh = w.Button(description="Refresh", icon="refresh", tooltip="list the server's models")
        self.refresh.add_class("lollms-settings-refresh")
        self.use = w.Button(description="Use", button_style="primary",
                            tooltip="make this the default of the magics and panels")
        self.options = {name: self._option_row(spec) for name, spec in OPTIONS.items()}
        self.use.add_class("lollms-settings-use")
        self.key.add_class("lollms-settings-key")
        self._asked = 0  # model listings asked for; only the newest one fills the list
        self.refresh.on_click(lambda _: self.list_models())
        self.use.on_click(lambda _: self.apply())
        self.binding.observe(self._on_binding, names="value")
        self._on_binding()
        if first != AUTO:  # the panel shows at once; the list follows when the server answers
            self.list_models()
        rows = [row for row, _, _ in self.options.values()]
        return [
            w.HTML("<b>lollms settings</b>"), self.binding, self.host, self.key,
            w.HBox([self.model, self.refresh]), w.HTML("<i>options (ticked ones are sent)</i>"),
            w.GridBox(rows, layout=w.Layout(grid_template_columns="repeat(2, 420px)")),
            w.HBox([self.use]), self.status,
        ]

    def _option_row(self, spec: OptionSpec) -> tuple[Any, Any, Any]:
        w = self.w
        current = self.session.options.get(spec.name)
        tick = w.Checkbox(value=current is not None, description=spec.name, indent=False,
                          layout=w.Layout(width="140px"))
        start = current if current is not None else START.get(spec.name, 0)
        low = spec.minimum if spec.minimum is not None else -(2**31)
        high = spec.maximum if spec.maximum is not None else 2**31 - 1
        if spec.kind is list:
            box = w.Text(value="|".join(start) if isinstance(start, list) else str(start),
                         placeholder="strings, split by |")
        elif spec.kind is int:
            box = w.BoundedIntText(value=int(start), min=int(low), max=int(high))
        else:
            box = w.BoundedFloatText(value=float(start), min=low, max=high, step=0.05)
        box.layout.width = "200px"
        box.disabled = not tick.value
        tick.observe(lambda change: setattr(box, "disabled", not change["new"]), names="value")
        return w.HBox([tick, box], layout=w.Layout(width="410px")), tick, box

    def _on_key(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self._pending_key = change["new"]
            self.key.value = ""
            self.key.placeholder = "key entered (hidden): press Use to keep it"

    def _on_binding(self, change: Any = None) -> None:
        name = self.binding.value
        auto = name == AUTO
        self.host.disabled = self.model.disabled = self.refresh.disabled = self.key.disabled = auto
        if change is not None:  # another binding: the old one's models do not apply
            self._asked += 1  # nor does a listing still under way
            self.model.options, self.model.value = [DEFAULT_MODEL], ""
        if auto:
            self.host.placeholder = "chosen automatically"
            self.key.placeholder = KEY_PLACEHOLDER
            return
        try:
            self.host.placeholder = binding_class(name).default_host or "the binding's default"
        except LollmsMagicsError as exc:
            self.fail(exc)
        keyless = not takes_key(name)
        self.key.disabled = keyless
        if keyless:
            self.key.placeholder = f"{name} needs no API key"
        else:
            held = name in self.session.keys
            self.key.placeholder = "key kept in memory (type again to change it)" if held else KEY_PLACEHOLDER
        if keyless and self._pending_key:  # typed for another binding: never sent to this one
            self._pending_key = None
            self.say(f"{name} needs no API key: the key typed is not kept")

    def option_values(self) -> dict[str, Any]:
        """The ticked options, as typed (not yet validated)."""
        values: dict[str, Any] = {}
        for name, (_, tick, box) in self.options.items():
            if tick.value:
                listed = OPTIONS[name].kind is list
                values[name] = [s for s in box.value.split("|") if s] if listed else box.value
        return values

    def _keep_key(self) -> bool:
        """Move a typed key into the session (stripped there); False when none was typed.

        A key with a line break or a control character inside is refused
        (:class:`InvalidOptionError`, which names no part of it) and dropped:
        it is typed again.
        """
        if self._pending_key and self.binding.value != AUTO:
            key, self._pending_key = self._pending_key, None
            try:
                self.session.set_key(self.binding.value, key)
            except LollmsMagicsError:
                self.key.placeholder = "hidden; kept in memory only"
                raise
            self.key.placeholder = "key kept in memory (type again to change it)"
            return True
        return False

    def list_models(self) -> None:
        """Ask the chosen binding for its models in the background (what Refresh does).

        Also done when the panel opens. Each call supersedes the listings
        still under way: only the newest one fills the list and the status.
        """
        self._asked += 1
        asked = self._asked
        self.worker = Worker(f"lollms-{self.kind}-models", self._unexpected)
        self.worker.start(lambda: self._refresh(asked))

    def _refresh(self, asked: int) -> None:
        """List the models of the chosen binding at the chosen host (run in a worker thread)."""
        name, host = self.binding.value, self.host.value.strip() or None
        self.say(f"asking {name} for its models…")
        try:
            self._keep_key()
            cls = binding_class(name)
            from ..bindings.http import HTTPBinding

            probe = get_binding(name, host, None, self.session.keys.get(name),
                                **(QUICK if issubclass(cls, HTTPBinding) else {}))
            try:
                found = [m.name for m in probe.list_models()]
            finally:
                probe.close()
        except LollmsMagicsError as exc:
            if asked == self._asked:
                self.say(f"could not list the models: {exc}", error=True)
            return
        if asked != self._asked:  # a newer listing, or another binding, came meanwhile
            return
        current = self.model.value  # the model in use: kept selected, whatever the server lists
        listed = listed_as(current, found) if current else None
        # The server's names label the entries; the one in use keeps its own spelling as value,
        # so that Use after a Refresh changes nothing the user did not change.
        options = [DEFAULT_MODEL] + [(m, current if m == listed else m) for m in found]
        if current and listed is None:
            options.append((f"{current} (in use; not listed by the server)", current))
        self.model.options = options
        self.model.value = current
        self.say(f"{name}: {len(found)} model(s)")

    def apply(self) -> None:
        """Make the panel's choice the session's default (what Use does)."""
        name = self.binding.value
        try:
            options = validate_options(self.option_values())
            self._keep_key()
        except LollmsMagicsError as exc:
            self.say(str(exc), error=True)
            return
        keyed = name in self.session.keys and takes_key(name)
        if name == AUTO:
            self.session.use(AUTO)
            where = "the automatic choice (made at the next prompt)"
        else:
            model, host = self.model.value or None, self.host.value.strip() or None
            self.session.use(name, model, host)
            where = f"`{name}`" + (f" · model `{model}`" if model else "") + (
                f" · host `{safe_host(host)}`" if host else "")
        self.session.options = options
        shown = ", ".join(f"{k}={v}" for k, v in options.items()) or "the server's defaults"
        key = " · API key typed (kept in memory, never saved)" if keyed else ""
        if name != AUTO and not takes_key(name):
            key = f" · {name} needs no API key"
        self.say(f"using {where.replace('`', '')}; options: {shown}")
        line = self.session.keys.redact(f"**lollms settings**: {where} · options: {shown}{key}")
        meta = {"panel": "settings", "binding": name, "options": options}
        # One line, replaced by each Use: the settings in force, not a log of the clicks.
        self.record.markdown(line, {"lollms_magics": meta}, replace="settings")
