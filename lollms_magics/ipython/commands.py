"""The ``%lollms COMMAND`` subcommands, one handler each in a table.

A line whose first word (after any options) names a command runs that
command, unless the words after it do not fit the command and none looks
like an option: then the line is a prompt (``%lollms help me name this
function`` asks the model). Options may come before or after the command:
``%lollms -b ollama --host URL models`` and ``%lollms models -b ollama``.

Other modules add their commands to :data:`COMMANDS` with a parser of their
own (``%lollms image``, ``%lollms summarize``...).
"""

from __future__ import annotations

import importlib
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from IPython.core.error import UsageError

from ..core.status import safe_host
from ..errors import UnknownBindingError
from .args import PROMPT_PARSER, Parser, split_options
from .plain import say

if TYPE_CHECKING:
    from ..core.session import Session


class Magics(Protocol):
    """What a command needs of the magics (``LollmsMagics``, which imports this module)."""

    @property
    def session(self) -> Session: ...

    def traits(self, **metadata: Any) -> dict[str, Any]: ...

__all__ = ["COMMANDS", "Command", "run"]

# handler(magics, parsed arguments, cell body or None); modules typing their magics
# as LollmsMagics register here too.
Handler = Callable[..., None]


@dataclass(frozen=True)
class Command:
    """A subcommand: its handler, how many words it takes, its options and help.

    With ``parser``, the command parses its own options (and ``words`` is not
    checked); ``cell`` says whether ``%%lollms COMMAND`` takes the cell body.
    """

    handler: Handler
    words: tuple[int, int]
    usage: str
    help: str
    options: tuple[str, ...] = ()
    parser: Parser | None = None
    cell: bool = False


def _parser() -> Parser:
    p = Parser("%lollms")
    p.add_argument("words", nargs="*")
    p.add_argument("-b", "--binding")
    p.add_argument("-m", "--model")
    p.add_argument("--host")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--export", metavar="FILE")  # history's
    return p


_PARSER = _parser()


def run(magics: Magics, line: str, cell: str | None = None) -> bool:
    """Run ``line`` if it is a command; False when it is a prompt."""
    try:
        argv, rest = split_options(line)
    except UsageError:
        return False
    name, _, tail = rest.strip().partition(" ")
    if not name and not argv and cell is None:
        name = "help"
    found = command(name)
    if found is None:
        return False
    cmd = found
    try:
        words = shlex.split(tail)
    except ValueError:  # an apostrophe in prose: a prompt, unless the command takes prose
        if cmd.parser is None:
            return False
        words = tail.split()
    if cell is not None and not cmd.cell:
        raise UsageError(f"%%lollms {name} takes no cell body; use %lollms {name}")
    if cmd.parser is not None:
        cmd.handler(magics, cmd.parser.parse_args(argv + words), cell)
        return True
    has_option = bool(argv) or any(word.startswith("-") for word in words)
    positional = [word for word in words if not word.startswith("-")]
    low, high = cmd.words
    if len(positional) > high and not has_option:
        return False
    args = _PARSER.parse_args(argv + words)
    given = [opt for opt in ("binding", "model", "host", "export") if getattr(args, opt) is not None]
    if not low <= len(args.words) <= high or set(given) - set(cmd.options):
        raise UsageError(f"usage: {cmd.usage}")
    cmd.handler(magics, args, cell)
    return True


def _bindings(magics: Magics, args: Any, cell: str | None) -> None:
    from ..bindings import binding_names

    current = magics.session.last or magics.session.configured()
    current_name = current.name if current is not None else None
    say("\n".join(f"{'*' if name == current_name else ' '} {name}" for name in binding_names()))


def _models(magics: Magics, args: Any, cell: str | None) -> None:
    session = magics.session
    target = session.target(args.binding, args.model, args.host)
    binding = session.binding(target)
    models = binding.list_models()
    if not models:
        say(f"{target.name} at {safe_host(binding.host)} offers no models")
        return
    say("\n".join(f"{'*' if model.name == binding.model else ' '} {model.name}" for model in models))


def _use(magics: Magics, args: Any, cell: str | None) -> None:
    spec = args.words[0]
    if spec.lower() == "auto":
        magics.session.use("auto")
        say("lollms: back to the automatic choice (made again at the next prompt)")
        return
    try:
        target = magics.session.use(spec, args.model, args.host, reason="set with %lollms use")
    except UnknownBindingError as exc:
        raise UsageError(f"%lollms use: {exc}") from None
    assert target is not None
    where = f" at {safe_host(args.host)}" if args.host else ""
    say(f"lollms: using {target.name}{' model ' + target.model if target.model else ''}{where}")


def _status(magics: Magics, args: Any, cell: str | None) -> None:
    say(magics.session.status())


def _history(magics: Magics, args: Any, cell: str | None) -> None:
    exchanges = magics.session.history()
    if args.export:
        from ..core.export import export_conversation
        from ..errors import InvalidOptionError

        try:
            kind = export_conversation(exchanges, args.export, magics.session.keys.redact)
        except InvalidOptionError as exc:
            raise UsageError(f"%lollms history --export: {exc}") from None
        except OSError as exc:
            why = f"cannot write {args.export}: {exc.strerror}"
            raise UsageError(f"%lollms history --export: {why}") from None
        say(f"lollms: {len(exchanges)} exchange(s) written to {args.export} ({kind})")
        return
    if not exchanges:
        say("lollms: the conversation is empty")
        return
    lines = []
    for number, exchange in enumerate(exchanges, 1):
        images = f" [+{len(exchange.images)} image(s)]" if exchange.images else ""
        lines.append(f"[{number}] you: {_short(exchange.prompt)}{images}")
        for label, result in exchange.calls():  # a tool cell's calls, before its answer
            lines.append(magics.session.keys.redact(f"    called {_short(f'{label} → {result}')}"))
        lines.append(f"    {exchange.backend or 'model'}: {_short(exchange.answer)}")
    say("\n".join(lines))


def _short(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _reset(magics: Magics, args: Any, cell: str | None) -> None:
    magics.session.reset()
    say("lollms: conversation cleared")


def _key(magics: Magics, args: Any, cell: str | None) -> None:
    from ..bindings import binding_class

    name = args.words[0]
    try:
        binding_class(name)
    except UnknownBindingError as exc:
        raise UsageError(f"%lollms key: {exc}") from None
    kept = magics.session.keys.ask(name)
    magics.session.forget_bindings(name)
    if kept:
        say(f"lollms: key for {name} kept in this kernel's memory only (never saved)")
    else:
        say(f"lollms: no key for {name}")


def _help(magics: Magics, args: Any, cell: str | None) -> None:
    text = PROMPT_PARSER.format_help()
    lines = ["%%lollms [options]   the cell is the prompt\n%lollms [options] PROMPT\n",
             text[text.find("options:") :].rstrip(), "\ncommands:"]
    for name in LAZY:
        command(name)
    lines += [f"  {entry.usage:<46} {entry.help}" for entry in COMMANDS.values()]
    lines.append("\nsettings (%config LollmsMagics.NAME = VALUE):")
    lines += [f"  {name:<18} {getattr(magics, name)!r:<12} {trait.help}"
              for name, trait in sorted(magics.traits(config=True).items())]
    lines.append(
        "\n{name}, {name.attr} and {name[0]} in a prompt are filled from your variables; "
        "other braces stay as written, and {{name}} gives a literal {name}."
    )
    say("\n".join(lines))


COMMANDS: dict[str, Command] = {
    "bindings": Command(_bindings, (0, 0), "%lollms bindings", "list the bindings"),
    "models": Command(
        _models, (0, 0), "%lollms models [-b BINDING] [--host URL]", "list a server's models",
        ("binding", "model", "host"),
    ),
    "use": Command(
        _use, (1, 1), "%lollms use BINDING[:MODEL]|auto [--host URL]", "set the kernel's default",
        ("model", "host"),
    ),
    "status": Command(_status, (0, 0), "%lollms status", "what answers, and why it was chosen"),
    "history": Command(
        _history, (0, 0), "%lollms history [--export FILE]",
        "show the conversation, or write it to FILE (.md, .json or .ipynb)", ("export",),
    ),
    "reset": Command(_reset, (0, 0), "%lollms reset", "start a new conversation"),
    "key": Command(_key, (1, 1), "%lollms key BINDING", "type a binding's API key (hidden)"),
    "help": Command(_help, (0, 0), "%lollms help", "this help"),
}

# Commands whose module is imported on first use (it adds them to COMMANDS), so that
# %load_ext stays light: name -> module of this package.
LAZY: dict[str, str] = {
    "image": "image", "tti": "image", "summarize": "summarize", "panel": "panel",
    "record": "replay", "replay": "replay", "sent": "inspection", "usage": "inspection",
    "explain": "explain", "fix": "explain",
}


def command(name: str) -> Command | None:
    """The command called ``name``, importing the module that provides it on first use."""
    if name not in COMMANDS and name in LAZY:
        importlib.import_module(f"{__package__}.{LAZY[name]}")
    return COMMANDS.get(name)
