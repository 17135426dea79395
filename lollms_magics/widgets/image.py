"""The image panel: prompt, negative prompt, size, seed, steps, the service's settings, a gallery, Save.

The picture is made in a worker thread (``Session.image``), with a progress
bar where the server reports progress. The image server is the session's
(``%lollms tti use`` or the automatic choice); the panel's own choice,
when made, becomes the session's too. The service settings form is built
from the server's own template (``get_settings()``). Each picture also goes
into the cell's output as a plain image with its provenance in the
metadata, so the saved notebook keeps it.
"""

from __future__ import annotations

import base64
import io
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import LollmsMagicsError
from ..tti import image_binding_names
from .common import Panel, Throttle
from .form import SettingsForm

if TYPE_CHECKING:
    from ..tti.base import ImageResult

__all__ = ["ImagePanel", "picture_bundle", "save_pictures"]

AUTO = "auto"
_PLAIN = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif"}  # what every notebook viewer shows
_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp"}


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
        self.load = w.Button(description="Service settings", tooltip="load the server's own settings")
        self.apply_button = w.Button(description="Apply settings", disabled=True)
        self.progress = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="300px"))
        self.gallery = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.folder = w.Text(value="lollms-images", description="folder")
        self.save = w.Button(description="Save", icon="save", disabled=True)
        self.form: SettingsForm | None = None
        self.form_box = w.VBox()
        self.result: ImageResult | None = None
        self.generate.on_click(lambda _: self.worker.start(self._generate))
        self.load.on_click(lambda _: self.worker.start(self._load_settings))
        self.apply_button.on_click(lambda _: self.worker.start(self._apply_settings))
        self.save.on_click(lambda _: self.save_result())
        return [
            w.HTML("<b>lollms image</b>"), w.HBox([self.binding, self.host]), self.prompt, self.negative,
            w.HBox([self.width_box, self.height_box]), w.HBox([self.seed, self.steps]),
            w.HBox([self.generate, self.progress]), w.HBox([self.load, self.apply_button]), self.form_box,
            self.gallery, w.HBox([self.folder, self.save]), self.status,
        ]

    def _choose(self) -> None:
        """Make the panel's server the session's image default when the user picked one."""
        name, host = self.binding.value, self.host.value.strip() or None
        chosen = self.session.image_chosen
        if name != AUTO and (chosen is None or (chosen.name, chosen.host) != (name, host)):
            keep = chosen.model if chosen is not None and chosen.name == name else None
            self.session.use_image(name, keep, host)
        elif name == AUTO and chosen is not None:
            self.session.use_image(AUTO)

    def _generate(self) -> None:
        prompt = self.prompt.value.strip()
        if not prompt:
            self.say("write a prompt first", error=True)
            return
        self._choose()
        self.generate.disabled, self.progress.value, self.progress.bar_style = True, 0.0, "info"
        self.say("making the picture…")
        throttle = Throttle(0.25)

        def report(fraction: float | None) -> None:
            if fraction is not None and (throttle.due() or fraction >= 1.0):
                self.progress.value = fraction

        try:
            with warnings.catch_warnings(record=True) as caught:  # shown in the panel, not lost in a thread
                warnings.simplefilter("always")
                result = self.session.image(
                    prompt, negative_prompt=self.negative.value.strip(), width=self.width_box.value,
                    height=self.height_box.value, seed=None if self.seed.value < 0 else self.seed.value,
                    steps=self.steps.value or None, progress=report)
        except LollmsMagicsError as exc:
            self.progress.bar_style = "danger"
            self.fail(exc)
            return
        finally:
            self.generate.disabled = False
        self.progress.value, self.progress.bar_style = 1.0, "success"
        self._show(result)
        notes = "; ".join(str(c.message) for c in caught)
        done = f"{len(result.images)} picture(s) in {result.duration:.1f} s"
        self.say(done + (f"; {notes}" if notes else ""))

    def _show(self, result: ImageResult) -> None:
        self.result = result
        frame = self.w.Layout(max_width="256px", margin="2px")
        self.gallery.children = [
            self.w.Image(value=data, format=fmt.lower(), layout=frame)
            for data, fmt in zip(result.images, result.formats, strict=False)
        ]
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
        self._choose()
        try:
            binding = self.session.image_binding(self.session.image_target())
            settings = binding.get_settings()
        except LollmsMagicsError as exc:
            self.fail(exc)
            return
        self.form = SettingsForm(self.w, settings)
        self.form_box.children = [self.form.widget]
        self.apply_button.disabled = not self.form.entries
        self.say(f"{binding.name}: {len(self.form.entries)} setting(s)")

    def _apply_settings(self) -> None:
        if self.form is None:
            return
        changes = self.form.changes()
        if not changes:
            self.say("no setting changed")
            return
        try:
            self.session.image_binding(self.session.image_target()).set_settings(**changes)
        except LollmsMagicsError as exc:
            self.fail(exc)
            return
        hidden = self.form.secret_names()
        self.form.applied()
        shown = ", ".join(f"{k}={'***' if k in hidden else v}" for k, v in changes.items())
        self.say(f"settings applied: {shown}")
        self.record.markdown(self.session.keys.redact(f"**lollms image settings**: {shown}"))
