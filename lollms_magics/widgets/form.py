"""A form built from a server's own settings template (the image panel's service settings).

Servers describe their settings two ways: LoLLMs as a template, a list of
``{"name", "type", "value", "help", "options"}`` entries; AUTOMATIC1111 and
ComfyUI as a plain ``{name: value}`` object. Both become one control per
scalar setting (a dropdown where the template lists options, or where the
server lists the values a setting takes: ``choices``), and
:meth:`SettingsForm.changes` gives back only what the user changed. A
dropdown always holds the setting's current value, listed or not, so that
a setting nobody touched is never sent back changed.

A setting whose name says it is a secret (key, token, password, client id:
:func:`~lollms_magics.secret_fields.is_secret_setting`, the rule every
place that shows settings follows) is shown empty, as a hidden field; what
is typed there is taken out of the widget as soon as the kernel receives
it, so that no saved widget state holds it.
"""

from __future__ import annotations

from typing import Any

from ..secret_fields import is_secret_setting

__all__ = ["SettingsForm", "entries"]

_SCALARS = (bool, int, float, str, type(None))
UNSET = "(the server's default)"  # how a dropdown shows a setting with no value (None)


def _shown(value: Any) -> str:
    """A value as a dropdown holds it: its text, "" for None."""
    return "" if value is None else str(value)


def entries(settings: Any) -> list[dict[str, Any]]:
    """The scalar settings as template entries (``name``, ``type``, ``value``, ``help``, ``options``)."""
    if isinstance(settings, dict):
        settings = [{"name": k, "value": v} for k, v in settings.items()]
    if not isinstance(settings, list):
        return []
    found = []
    for entry in settings:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            continue
        value = entry.get("value")
        if not isinstance(value, _SCALARS):
            continue  # lists and objects have no one-line control
        kind = str(entry.get("type") or type(value).__name__).lower()
        options = entry.get("options")
        found.append({
            "name": entry["name"], "type": kind, "value": value, "help": str(entry.get("help") or ""),
            "options": list(options) if isinstance(options, list) and options else None,
        })
    return found


class SettingsForm:
    """One control per setting; ``changes()`` returns the edited ones, typed as the template says."""

    def __init__(self, w: Any, settings: Any, choices: dict[str, list[Any]] | None = None) -> None:
        self.w = w
        self.entries = entries(settings)
        for entry in self.entries:  # the server's own lists of values (checkpoints, samplers...)
            listed = (choices or {}).get(entry["name"])
            if listed and not isinstance(entry["value"], bool):
                entry["options"] = list(listed)
        self.controls: dict[str, Any] = {}
        self._secrets: dict[str, str] = {}  # typed secret values, kept out of the widgets
        self._hidden: set[str] = set()  # the settings shown as hidden fields
        for entry in self.entries:
            self.controls[entry["name"]] = self._control(entry)
        self.widget = w.VBox(list(self.controls.values()))

    def _control(self, entry: dict[str, Any]) -> Any:
        w, name, value, kind = self.w, entry["name"], entry["value"], entry["type"]
        common = {"description": name, "tooltip": entry["help"] or None,
                  "style": {"description_width": "180px"}, "layout": w.Layout(width="480px")}
        if is_secret_setting(name, value):
            self._hidden.add(name)
            box = w.Password(value="", placeholder="hidden: type to change", continuous_update=False,
                             **common)
            box.observe(lambda change: self._take_secret(name, box, change), names="value")
            return box
        if entry["options"]:
            current, options = _shown(value), [_shown(o) for o in entry["options"]]
            if current not in options:  # shown as it is, not replaced by the first choice
                options.insert(0, current)
            labelled = [(o or UNSET, o) for o in options] if "" in options else options
            return w.Dropdown(options=labelled, value=current, **common)
        if kind in ("bool", "boolean") or isinstance(value, bool):
            return w.Checkbox(value=bool(value), indent=False, **common)
        if kind == "int" and isinstance(value, int):
            return w.IntText(value=value, **common)
        if kind == "float" and isinstance(value, (int, float)):
            return w.FloatText(value=float(value), **common)
        return w.Text(value="" if value is None else str(value), **common)

    def _take_secret(self, name: str, box: Any, change: dict[str, Any]) -> None:
        if change["new"]:
            self._secrets[name] = change["new"]
            box.value = ""
            box.placeholder = "typed (hidden): Apply sends it"

    def changes(self) -> dict[str, Any]:
        """The settings the user changed, with the template's types."""
        changed: dict[str, Any] = dict(self._secrets)
        for entry in self.entries:
            name = entry["name"]
            if name in changed or name in self._hidden:
                continue  # a hidden setting changes only when a value is typed for it
            new = self.controls[name].value
            old = entry["value"]
            if entry["options"]:
                if new != _shown(old):
                    changed[name] = next((o for o in entry["options"] if _shown(o) == new), new)
            elif isinstance(self.controls[name], self.w.Text):
                if new != ("" if old is None else str(old)):
                    changed[name] = new
            elif new != old:
                changed[name] = new
        return changed

    def secret_names(self) -> set[str]:
        """The hidden settings a value was typed for."""
        return set(self._secrets)

    def applied(self) -> None:
        """Take the current values as the new starting point (after the server accepted them)."""
        for entry in self.entries:
            if entry["name"] in self._secrets:
                continue
            control = self.controls[entry["name"]]
            entry["value"] = control.value if not entry["options"] else next(
                (o for o in entry["options"] if _shown(o) == control.value), control.value)
        self._secrets.clear()
