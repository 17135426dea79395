"""The ``%lollms COMMAND`` subcommands, one handler each in a table.

A line whose first word names a command runs that command, unless the words
after it do not fit the command and none looks like an option: then the line
is a prompt (``%lollms help me name this function`` asks the model).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ._args import PROMPT_PARSER, Parser
from .errors import LollmsMagicsError, UnknownBindingError

if TYPE_CHECKING:
    from .magics import LollmsMagics

__all__ = ["COMMANDS", "run"]

Handler = Callable[["LollmsMagics", Any], None]


@dataclass(frozen=True)
class Command:
    """A subcommand: its handler, how many words it takes, its options and help."""

    handler: Handler
    words: tuple[int, int]
    usage: str
    help: str
    options: tuple[str, ...] = ()


def _parser() -> Parser:
    p = Parser("%lollms")
    p.add_argument("words", nargs="*")
    p.add_argument("-b", "--binding")
    p.add_argument("-m", "--model")
    p.add_argument("--host")
    return p


_PARSER = _parser()


def run(magics: LollmsMagics, line: str) -> bool:
    """Run ``line`` if it is a command; False when it is a prompt."""
    name, _, rest = (line.strip() or "help").partition(" ")
    command = COMMANDS.get(name)
    if command is None:
        return False
    try:
        argv = shlex.split(rest)
    except ValueError:
        return False  # an apostrophe in a prose prompt
    has_option = any(word.startswith("-") for word in argv)
    positional = [word for word in argv if not word.startswith("-")]
    low, high = command.words
    if len(positional) > high and not has_option:
        return False
    args = _PARSER.parse_args(argv)
    given = [opt for opt in ("binding", "model", "host") if getattr(args, opt) is not None]
    if not low <= len(args.words) <= high or set(given) - set(command.options):
        raise UsageError(f"usage: {command.usage}")
    command.handler(magics, args)
    return True


def _safe_host(host: str) -> str:
    """``host`` without any ``user:password@`` part."""
    return re.sub(r"//[^/@]*@", "//***@", host)


def _bindings(magics: LollmsMagics, args: Any) -> None:
    from .bindings import binding_names

    current = magics.configured() or magics.auto
    for name in binding_names():
        mark = "*" if current is not None and current.name == name else " "
        print(f"{mark} {name}")


def _models(magics: LollmsMagics, args: Any) -> None:
    target = magics.target(args.binding, None, args.host)
    binding = magics.binding(target)
    try:
        models = binding.list_models()
    except LollmsMagicsError as exc:
        magics.report(exc)
        return
    if not models:
        print(f"{target.name} at {_safe_host(binding.host)} offers no models")
    for model in models:
        mark = "*" if model.name == binding.model else " "
        print(f"{mark} {model.name}")


def _use(magics: LollmsMagics, args: Any) -> None:
    from .bindings import binding_class

    name, _, model = args.words[0].partition(":")  # ollama:llama3.2:1b keeps its tag
    try:
        binding_class(name)
    except UnknownBindingError as exc:
        raise UsageError(f"%lollms use: {exc}") from None
    from .magics import Target

    magics.chosen = Target(name, model or None, args.host, "set with %lollms use")
    where = f" at {_safe_host(args.host)}" if args.host else ""
    print(f"lollms: using {name}{' model ' + model if model else ''}{where}")


def _status(magics: LollmsMagics, args: Any) -> None:
    try:
        target = magics.target(None, None, None)
    except LollmsMagicsError as exc:
        print(f"binding  none: {magics.keys.redact(str(exc))}")
        return
    from .bindings import get_binding

    # A probe of its own, quick to give up, rather than the cell's patient binding.
    binding = get_binding(
        target.name, target.host, target.model, magics.keys.get(target.name),
        connect_timeout=2.0, read_timeout=5.0, max_retries=0,
    )
    rows = [
        ("binding", f"{target.name} ({target.reason})"),
        ("model", binding.model or "the server's first"),
        ("host", _safe_host(binding.host)),
    ]
    try:
        models = binding.list_models()
        rows.append(("server", f"answers, {len(models)} model(s)"))
    except LollmsMagicsError as exc:
        rows.append(("server", f"does not answer: {magics.keys.redact(str(exc))}"))
    finally:
        binding.close()
    if target.name in magics.keys:
        rows.append(("key", "typed with %lollms key (kept in memory)"))
    elif binding.key_env:
        state = "set" if os.environ.get(binding.key_env) else "not set"
        rows.append(("key", f"{binding.key_env} is {state}"))
    rows.append((
        "history",
        f"{len(magics.conversation)} exchange(s), ~{magics.history_tokens()} of "
        f"{min(magics.context_size, binding.context_size or magics.context_size)} tokens",
    ))
    for label, value in rows:
        print(f"{label:<8} {value}")


def _history(magics: LollmsMagics, args: Any) -> None:
    if not magics.conversation.exchanges:
        print("lollms: the conversation is empty")
    for number, exchange in enumerate(magics.conversation.exchanges, 1):
        print(f"[{number}] you: {_short(exchange.prompt)}")
        print(f"    model: {_short(exchange.answer)}")


def _short(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _reset(magics: LollmsMagics, args: Any) -> None:
    magics.conversation.clear()
    print("lollms: conversation cleared")


def _key(magics: LollmsMagics, args: Any) -> None:
    from .bindings import binding_class

    name = args.words[0]
    try:
        binding_class(name)
    except UnknownBindingError as exc:
        raise UsageError(f"%lollms key: {exc}") from None
    kept = magics.keys.ask(name)
    magics.forget_bindings(name)
    if kept:
        print(f"lollms: key for {name} kept in this kernel's memory only (never saved)")
    else:
        print(f"lollms: no key for {name}")


def _help(magics: LollmsMagics, args: Any) -> None:
    print("%%lollms [options]   the cell is the prompt\n%lollms [options] PROMPT\n")
    text = PROMPT_PARSER.format_help()
    print(text[text.find("options:") :].rstrip())
    print("\ncommands:")
    for command in COMMANDS.values():
        print(f"  {command.usage:<42} {command.help}")
    print(
        "\n{name}, {name.attr} and {name[0]} in a prompt are filled from your variables; "
        "other braces stay as written, and {{name}} gives a literal {name}."
    )


COMMANDS: dict[str, Command] = {
    "bindings": Command(_bindings, (0, 0), "%lollms bindings", "list the bindings"),
    "models": Command(
        _models, (0, 0), "%lollms models [-b BINDING] [--host URL]", "list a server's models",
        ("binding", "host"),
    ),
    "use": Command(
        _use, (1, 1), "%lollms use BINDING[:MODEL] [--host URL]", "set the kernel's default",
        ("host",),
    ),
    "status": Command(_status, (0, 0), "%lollms status", "what answers, and why it was chosen"),
    "history": Command(_history, (0, 0), "%lollms history", "show the conversation"),
    "reset": Command(_reset, (0, 0), "%lollms reset", "start a new conversation"),
    "key": Command(_key, (1, 1), "%lollms key BINDING", "type a binding's API key (hidden)"),
    "help": Command(_help, (0, 0), "%lollms help", "this help"),
}
