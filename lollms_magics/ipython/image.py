"""``%lollms image`` and ``%lollms tti``: pictures under the cell, and the image backend.

::

    %lollms image a majestic owl -W 768 -H 512 --seed 7
    %%lollms image --negative "blurry" -n 2 --save owls/ --out pics
    An owl reading {book_title}, in the style of {painter}
    %lollms tti use a1111 --host http://gpu-box:7860
    %lollms tti models | settings | services
    %lollms tti set sampler_name=dpmpp_2m steps=30

``-b/-m/--host`` pick the image backend for one call, as they do for text;
``{variable}`` references are filled as in text prompts (``--raw`` keeps
them). The session does the work (:meth:`~lollms_magics.core.session.Session.image`);
this module parses, shows and saves.
"""

from __future__ import annotations

import json
import keyword
import sys
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..core.status import safe_host
from ..errors import LollmsMagicsError
from ..secret_fields import mask_settings
from .args import Parser
from .commands import COMMANDS, Command
from .display import replayed_pictures
from .image_display import ImageProgress, save_images, show_images
from .plain import say

if TYPE_CHECKING:
    from .magics import LollmsMagics

__all__ = ["IMAGE_PARSER", "TTI_PARSER", "image", "tti"]


def _image_parser() -> Parser:
    p = Parser("%lollms image")
    add = p.add_argument
    add("prompt", nargs="*", help="what to draw (in the cell form, the cell is the prompt)")
    add("-b", "--binding", help="image binding: lollms, openai, a1111, comfyui")
    add("-m", "--model", help="model or checkpoint")
    add("--host", help="server URL")
    add("--negative", default="", metavar="TEXT", help="what the picture must not show")
    add("-W", "--width", type=int, metavar="PX", help="width in pixels")
    add("-H", "--height", type=int, metavar="PX", help="height in pixels")
    add("--seed", type=int, help="random seed (-1: random)")
    add("--steps", type=int, help="sampling steps")
    add("--cfg", type=float, metavar="SCALE", help="guidance (CFG) scale")
    add("-n", type=int, default=1, metavar="N", help="number of pictures")
    add("--save", metavar="PATH_OR_DIR", help="write the pictures there (never replacing a file)")
    add("--out", metavar="VAR", help="store the PIL image (a list when -n > 1) in variable VAR")
    add(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server field sent as is (sampler_name=Euler, ...); repeatable",
    )
    add("--timeout", type=float, metavar="S", help="seconds the picture may take")
    add("--raw", action="store_true", help="send {braces} as written")
    add("--debug", action="store_true", help="show the traceback of errors")
    add("--help", action="store_true", help="this help")
    return p


def _tti_parser() -> Parser:
    p = Parser("%lollms tti")
    add = p.add_argument
    add("words", nargs="+")
    add("-b", "--binding")
    add("-m", "--model")
    add("--host")
    add("--client-id", help="lollms-webui: the id of an open web UI session (kept, never shown)")
    add("--workflow", help="comfyui: an API-format workflow file")
    add("--debug", action="store_true")
    return p


IMAGE_PARSER = _image_parser()
TTI_PARSER = _tti_parser()
TTI_USAGE = "%lollms tti services|settings|models|use BINDING[:MODEL]|set NAME=VALUE ..."


def _value(text: str) -> Any:
    """A ``NAME=VALUE`` value: JSON when it reads as JSON (numbers, true, lists), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pairs(words: list[str], what: str) -> dict[str, Any]:
    pairs = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not name:
            raise UsageError(f"{what}: {word!r} is not NAME=VALUE")
        pairs[name] = _value(value)
    return pairs


def image(magics: LollmsMagics, args: Any, cell: str | None) -> None:
    """``%lollms image PROMPT [options]`` / ``%%lollms image [options]``: make and show pictures."""
    if args.help:
        say(IMAGE_PARSER.format_help().rstrip())
        return
    if cell is not None and args.prompt:
        raise UsageError("%%lollms image: the prompt goes in the cell, not on the line")
    prompt = (cell if cell is not None else " ".join(args.prompt)).strip()
    if not prompt:
        raise UsageError("%lollms image: nothing to draw; write a prompt (see %lollms help)")
    if args.out and not (args.out.isidentifier() and not keyword.iskeyword(args.out)):
        raise UsageError(f"%lollms image: --out needs a variable name, not {args.out!r}")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("%lollms image: --timeout needs a positive number of seconds")
    extra = _pairs(args.param, "%lollms image --param")
    session = magics.session
    target = session.image_target(args.binding, args.model, args.host)
    progress = ImageProgress(rich=magics._rich(), label=f"lollms image · {target.name}")
    try:
        result = session.image(
            prompt,
            binding=target.name,
            model=target.model,
            host=target.host,
            negative_prompt=args.negative,
            width=args.width,
            height=args.height,
            seed=args.seed,
            steps=args.steps,
            cfg_scale=args.cfg,
            n=args.n,
            progress=progress,
            namespace=None if args.raw else magics.ip.user_ns,
            timeout=args.timeout,
            **extra,
        )
    except KeyboardInterrupt:
        _close_progress(progress, "interrupted: the server's job was cancelled where its API allows")
        say("lollms: interrupted; the server was asked to stop the picture", file=sys.stderr)
        raise
    except LollmsMagicsError as exc:
        _close_progress(progress, f"failed: {session.keys.redact(str(exc))}")
        raise
    metadata = session.keys.redact_data({**result.metadata(), "width": result.width, "height": result.height})
    assert isinstance(metadata, dict)
    replayed_pictures(metadata)  # a replayed picture: the recorded duration, and where it came from
    show_images(result, metadata, progress)
    if args.save:
        saved = save_images(result, args.save, metadata)
        if saved:
            say("\n".join(saved))
    if args.out:
        pictures = result.pil_images()
        magics.ip.user_ns[args.out] = pictures if args.n > 1 else pictures[0]


def _close_progress(progress: ImageProgress, why: str) -> None:
    """Replace a progress display that will not get its pictures by one line saying why."""
    if progress.handle is not None:
        text = f"{progress.label}: {why}"
        progress.handle.update({"text/plain": text}, raw=True)


def tti(magics: LollmsMagics, args: Any, cell: str | None) -> None:
    """``%lollms tti ...``: choose the image backend, list its models, services, settings."""
    sub, rest = args.words[0], args.words[1:]
    session = magics.session
    if sub == "use":
        if len(rest) != 1:
            raise UsageError("usage: %lollms tti use BINDING[:MODEL]|auto [--host URL]")
        config = {k: v for k, v in (("client_id", args.client_id), ("workflow", args.workflow)) if v}
        chosen = session.use_image(rest[0], args.model, args.host, **config)
        if chosen is None:
            say("lollms: pictures back to the automatic choice")
            return
        where = f" at {safe_host(chosen.host)}" if chosen.host else ""
        say(f"lollms: pictures from {chosen.name}{' model ' + chosen.model if chosen.model else ''}{where}")
        return
    if sub not in ("services", "settings", "models", "set") or bool(rest) != (sub == "set"):
        raise UsageError(f"usage: {TTI_USAGE}")
    binding = session.image_binding(session.image_target(args.binding, args.model, args.host))
    if sub == "models":
        models = binding.list_models()
        if not models:
            say(f"{binding.name} at {safe_host(binding.host)} offers no image models")
        else:
            say("\n".join(f"{'*' if model.name == binding.model else ' '} {model.name}" for model in models))
    elif sub == "services":
        services = binding.list_services()
        if services:
            say("\n".join(
                f"  {service.get('name')}: {service.get('caption', '')} {service.get('help', '')}".rstrip()
                for service in services
            ))
    elif sub == "settings":
        _print_settings(mask_settings(binding.get_settings()))  # secret settings as the panel hides them
    else:
        done = binding.set_settings(**_pairs(rest, "%lollms tti set"))
        say("lollms: image settings changed" if done else "lollms: the server did not apply the settings")


def _print_settings(settings: Any) -> None:
    if isinstance(settings, list):  # lollms-webui's template: [{"name", "value", "help", ...}]
        lines = [f"  {entry.get('name')} = {entry.get('value')!r}  {entry.get('help', '')}".rstrip()
                 for entry in settings if isinstance(entry, dict)]
    elif isinstance(settings, dict):
        lines = [f"  {name} = {value!r}" for name, value in settings.items()]
    else:
        lines = []
    say("\n".join(lines) if lines else "  (no settings)")


COMMANDS["image"] = Command(
    image, (0, 0), "%lollms image PROMPT [-W 768 -H 512 ...]", "make pictures (--help)",
    parser=IMAGE_PARSER, cell=True,
)
COMMANDS["tti"] = Command(tti, (1, 99), TTI_USAGE, "the image backend", parser=TTI_PARSER)
