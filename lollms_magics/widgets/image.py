"""The image panel: prompt, negative prompt, size, seed, steps, the service's settings, Stop, Save.

The picture is made in a worker thread (``Session.image``), with a progress
bar where the server reports progress. The image server is the session's
(``%lollms tti use`` or the automatic choice); the panel's own choice,
when made, becomes the session's too.

Stop works as the magic's interrupt does: the binding hears a
``KeyboardInterrupt`` in the thread making the picture (raised here from
its progress callback) and asks the server to drop the job (A1111's
``/sdapi/v1/interrupt``, ComfyUI's ``/interrupt`` and queue removal). Only
servers that report progress call back while they work, so Stop is offered
for those alone; the others finish the picture they were asked for.

The service settings form is built from the server's own settings
(``get_settings()``), with choices where the server lists them
(``setting_choices()``: checkpoints, samplers) and only the settings a
user changes (see :data:`SHOWN`). Each picture goes into the cell's output
once, as a plain image with its provenance in the metadata: what the user
sees under the panel is what the saved notebook keeps, and no widget holds
a second copy of it.
"""

from __future__ import annotations

import base64
import io
import re
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LollmsMagicsError
from ..tti import image_binding_class, image_binding_names
from .common import Panel, Throttle
from .form import SettingsForm

if TYPE_CHECKING:
    from ..tti.base import ImageBinding, ImageResult

__all__ = ["ImagePanel", "picture_bundle", "save_pictures"]

AUTO = "auto"
_PLAIN = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif"}  # what every notebook viewer shows
_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp"}

# What the settings form shows of a server's settings: those that change the pictures.
# A1111's /sdapi/v1/options holds some 400 entries, nearly all of them paths (outdir_samples),
# hashes (sd_checkpoint_hash), file-name patterns and interface preferences that no picture
# depends on and that a slip of the mouse would change on the server: a short allow-list.
# ComfyUI's settings are the inputs of the workflow's sampler and checkpoint loader, already
# the few a user changes, less the seed (the panel's own field sets it for every picture) and
# "workflow" (which workflow is loaded: a fact, not an input): a deny-list. Other servers'
# settings (LoLLMs' template) are made for users and shown whole.
SHOWN: dict[str, tuple[str, ...]] = {
    "a1111": ("sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers", "eta_noise_seed_delta",
              "samples_format", "jpeg_quality"),
}
HIDDEN: dict[str, tuple[str, ...]] = {"comfyui": ("seed", "noise_seed", "workflow")}
# A1111 takes the sampler and scheduler with each picture, not as server options: the form
# offers them (from the server's lists), and the panel sends the chosen ones with every picture.
PER_PICTURE: dict[str, tuple[str, ...]] = {"a1111": ("sampler_name", "scheduler")}


class _Stopped(KeyboardInterrupt):
    """Stop was clicked: raised by the progress callback in the thread making the picture.

    The image bindings answer a KeyboardInterrupt there by asking the server
    to drop the job, then let it through (the path of the magic's interrupt).
    """


def shown_settings(binding: str, settings: Any) -> Any:
    """The part of a server's ``settings`` the form shows (see :data:`SHOWN` and :data:`HIDDEN`)."""
    if not isinstance(settings, dict):
        return settings
    if binding in SHOWN:
        return {name: settings[name] for name in SHOWN[binding] if name in settings}
    hidden = HIDDEN.get(binding, ())
    return {name: value for name, value in settings.items() if name not in hidden}


def picture_bundle(data: bytes, fmt: str, caption: str) -> dict[str, Any]:
    """One picture as a notebook output (converted to PNG when viewers may not show its format)."""
    if fmt.upper() not in _PLAIN:
        from PIL import Image

        buffer = io.BytesIO()
        Image.open(io.BytesIO(data)).save(buffer, "PNG")
        data, fmt = buffer.getvalue(), "PNG"
    return {_PLAIN[fmt.upper()]: base64.b64encode(data).decode("ascii"), "text/plain": caption}


def save_pictures(result: ImageResult, folder: str) -> list[Path]:
    """Write the pictures under ``folder``; an existing name gets ``-1``, ``-2``... (never overwritten)."""
    where = Path(folder).expanduser()
    where.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9]+", "-", result.prompt).strip("-")[:40].lower() or "picture"
    written = []
    for index, (data, fmt) in enumerate(zip(result.images, result.formats, strict=False)):
        seed = result.seeds[index] if index < len(result.seeds) else result.seed
        base = f"{stem}-{seed}" if seed is not None else stem
        path, n = where / f"{base}{_SUFFIX.get(fmt.upper(), '.img')}", 0
        while path.exists():
            n += 1
            path = where / f"{base}-{n}{_SUFFIX.get(fmt.upper(), '.img')}"
        path.write_bytes(data)
        written.append(path)
    return written


class ImagePanel(Panel):
    """Make pictures with the session's image server."""

    kind = "image"

    def _build(self) -> list[Any]:
        w = self.w
        chosen = self.session.image_chosen
        names = [AUTO, *image_binding_names()]
        first = chosen.name if chosen and chosen.name in names else AUTO
        self.binding = w.Dropdown(options=names, value=first, description="server")
        self.host = w.Text(value=(chosen.host or "") if chosen else "", description="host",
                           placeholder="the binding's usual address")
        self.prompt = w.Textarea(description="prompt", rows=2, layout=w.Layout(width="100%"))
        self.negative = w.Textarea(description="negative", rows=1, layout=w.Layout(width="100%"))
        self.width_box = w.BoundedIntText(value=512, min=64, max=4096, step=64, description="width")
        self.height_box = w.BoundedIntText(value=512, min=64, max=4096, step=64, description="height")
        self.seed = w.IntText(value=-1, description="seed", tooltip="-1: random")
        self.steps = w.BoundedIntText(value=0, min=0, max=500, description="steps", tooltip="0: the server's")
        self.generate = w.Button(description="Generate", button_style="primary", icon="image")
        self.generate.add_class("lollms-image-generate")
        self.stop = w.Button(description="Stop", button_style="warning", icon="stop", disabled=True,
                             tooltip="ask the server to drop the picture (A1111, ComfyUI)")
        self.stop.add_class("lollms-image-stop")
        self._stopping = threading.Event()
        self.load = w.Button(description="Service settings", tooltip="load the server's own settings")
        self.apply_button = w.Button(description="Apply settings", disabled=True)
        self.progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="300px"))
        self.folder = w.Text(value="lollms-images", description="folder")
        self.save = w.Button(description="Save", icon="save", disabled=True)
        self.form: SettingsForm | None = None
        self.form_box = w.VBox()
        self.form_box.add_class("lollms-image-settings")
        self.result: ImageResult | None = None
        self.picture_fields: dict[str, Any] = {}  # PER_PICTURE settings chosen, sent with each picture
        self._fields_of = ""  # the binding they were chosen for
        self.status.add_class("lollms-image-status")
        self.generate.on_click(lambda _: self.start())
        self.stop.on_click(lambda _: self.cancel())
        self.load.on_click(lambda _: self.worker.start(self._load_settings))
        self.apply_button.on_click(lambda _: self.worker.start(self._apply_settings))
        self.save.on_click(lambda _: self.save_result())
        return [
            w.HTML("<b>lollms image</b>"), w.HBox([self.binding, self.host]), self.prompt, self.negative,
            w.HBox([self.width_box, self.height_box]), w.HBox([self.seed, self.steps]),
            w.HBox([self.generate, self.stop, self.progress]), w.HBox([self.load, self.apply_button]),
            self.form_box, w.HBox([self.folder, self.save]), self.status,
        ]

    def start(self) -> bool:
        """Start making the picture in the background (what Generate does); False while one is made."""
        stopping = threading.Event()  # this picture's own: a later Generate never clears it
        previous, self._stopping = self._stopping, stopping
        if not self.worker.start(lambda: self._generate(stopping)):
            self._stopping = previous
            return False
        return True

    def cancel(self) -> None:
        """Stop the picture being made (what Stop does); a second call changes nothing."""
        if self._stopping.is_set() or not self.worker.busy:
            return
        self._stopping.set()
        self.stop.disabled = True
        self.say("stopping: the server is asked to drop the picture…")

    def _choose(self) -> None:
        """Make the panel's server the session's image default when the user picked one."""
        name, host = self.binding.value, self.host.value.strip() or None
        chosen = self.session.image_chosen
        if name != AUTO and (chosen is None or (chosen.name, chosen.host) != (name, host)):
            keep = chosen.model if chosen is not None and chosen.name == name else None
            self.session.use_image(name, keep, host)
        elif name == AUTO and chosen is not None:
            self.session.use_image(AUTO)

    def _generate(self, stopping: threading.Event) -> None:
        prompt = self.prompt.value.strip()
        if not prompt:
            self.say("write a prompt first", error=True)
            return
        self.generate.disabled, self.progress.value, self.progress.bar_style = True, 0.0, "info"
        self.say("making the picture…")
        throttle = Throttle(0.25)

        def report(fraction: float | None) -> None:
            # 1.0 comes once the pictures are made and read: nothing is left to stop then.
            if stopping.is_set() and fraction != 1.0:
                raise _Stopped()
            if fraction is not None and (throttle.due() or fraction >= 1.0):
                self.progress.value = fraction

        try:
            self._choose()
            target = self.session.image_target()
            self.stop.disabled = stopping.is_set() or not image_binding_class(target.name).reports_progress
            extra = dict(self.picture_fields) if self._fields_of == target.name else {}
            with warnings.catch_warnings(record=True) as caught:  # shown in the panel, not lost in a thread
                warnings.simplefilter("always")
                result = self.session.image(
                    prompt, negative_prompt=self.negative.value.strip(), width=self.width_box.value,
                    height=self.height_box.value, seed=None if self.seed.value < 0 else self.seed.value,
                    steps=self.steps.value or None, progress=report, **extra)
        except _Stopped:
            self.progress.bar_style = "warning"
            self.say("stopped: the server was asked to drop the picture")
            return
        except LollmsMagicsError as exc:
            self.progress.bar_style = "danger"
            self.fail(exc)
            return
        finally:
            self.generate.disabled, self.stop.disabled = False, True
        self.progress.value, self.progress.bar_style = 1.0, "success"
        self._show(result)
        notes = "; ".join(str(c.message) for c in caught)
        done = f"{len(result.images)} picture(s) in {result.duration:.1f} s"
        self.say(done + (f"; {notes}" if notes else ""))

    def _show(self, result: ImageResult) -> None:
        # Shown once, in the cell's output under the panel: the record a static viewer needs.
        # No Image widget repeats it (its bytes would be a second copy in the saved widget state).
        self.result = result
        self.save.disabled = False
        size = f"{result.sizes[0][0]}×{result.sizes[0][1]}" if result.sizes else ""
        caption = f"lollms image: {result.prompt} · {size} · seed {result.seed} · {result.binding}"
        meta = self.session.keys.redact_data({**result.metadata(), "panel": "image"})
        self.record.markdown(self.session.keys.redact(
            f"**lollms image**: *{result.prompt}* · {size} · seed {result.seed} · "
            f"{result.binding}{' · ' + result.model if result.model else ''}"))
        for data, fmt in zip(result.images, result.formats, strict=False):
            self.record.show(picture_bundle(data, fmt, caption), {"lollms_magics": meta})

    def save_result(self) -> list[Path]:
        """Write the last pictures to the folder field (what Save does)."""
        if self.result is None:
            self.say("nothing to save yet: Generate first", error=True)
            return []
        try:
            paths = save_pictures(self.result, self.folder.value.strip() or ".")
        except OSError as exc:
            self.say(f"could not save: {exc}", error=True)
            return []
        shown = ", ".join(f"`{p}`" for p in paths)
        self.say(f"saved {len(paths)} picture(s): {', '.join(map(str, paths))}")
        self.record.markdown(f"**lollms image**: saved {shown}")
        return paths

    def _load_settings(self) -> None:
        try:
            self._choose()
            binding = self.session.image_binding(self.session.image_target())
            settings = shown_settings(binding.name, binding.get_settings())
            choices = binding.setting_choices()
        except LollmsMagicsError as exc:
            self.fail(exc)
            return
        self._add_per_picture(binding, settings, choices)
        self.form = SettingsForm(self.w, settings, choices)
        self.form_box.children = [self.form.widget]
        self.apply_button.disabled = not self.form.entries
        self.say(f"{binding.name}: {len(self.form.entries)} setting(s)")

    def _add_per_picture(self, binding: ImageBinding, settings: Any, choices: dict[str, list[str]]) -> None:
        """Offer the settings the server takes with each picture (A1111's sampler), where it lists them."""
        if self._fields_of != binding.name:
            self.picture_fields, self._fields_of = {}, binding.name
        if isinstance(settings, dict):
            for name in PER_PICTURE.get(binding.name, ()):
                if choices.get(name):
                    settings[name] = self.picture_fields.get(name)  # None: the server's default

    def _apply_settings(self) -> None:
        if self.form is None:
            return
        changes = self.form.changes()
        if not changes:
            self.say("no setting changed")
            return
        name = self.session.image_target().name
        per_picture = {k: changes.pop(k) for k in PER_PICTURE.get(name, ()) if k in changes}
        try:
            if changes:
                self.session.image_binding(self.session.image_target()).set_settings(**changes)
        except LollmsMagicsError as exc:
            self.fail(exc)
            return
        for field, value in per_picture.items():  # kept here, sent with each picture
            if value in ("", None):
                self.picture_fields.pop(field, None)
            else:
                self.picture_fields[field] = value
        self._fields_of = name
        changes.update(per_picture)
        hidden = self.form.secret_names()
        self.form.applied()
        shown = ", ".join(f"{k}={'***' if k in hidden else v}" for k, v in changes.items())
        self.say(f"settings applied: {shown}")
        self.record.markdown(self.session.keys.redact(f"**lollms image settings**: {shown}"))
