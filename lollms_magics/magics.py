"""The ``%lollms`` line magic and ``%%lollms`` cell magic.

This module wires IPython to the rest of the package: it parses the command
line, resolves which binding to talk to, and hands the streaming, display,
history and keys to their own small modules. Nothing heavy is imported here:
the bindings (and httpx) load on the first request.
"""

from __future__ import annotations

import keyword
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import CaselessStrEnum, Float, Int, Unicode, default

from . import _commands
from ._args import parse_prompt
from ._display import FORMATS, LiveAnswer, first_code_block, has_rich_display
from ._history import Conversation, cell_key, estimate_tokens
from ._interpolate import fill, lookup
from ._keys import KeyStore
from .errors import (
    InvalidImageError,
    InvalidOptionError,
    LollmsMagicsError,
    UnknownBindingError,
)
from .options import validate_options

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .bindings.base import Binding
    from .response import Response

__all__ = ["LollmsMagics", "Target"]

ENV_BINDING, ENV_MODEL, ENV_HOST = "LOLLMS_MAGICS_BINDING", "LOLLMS_MAGICS_MODEL", "LOLLMS_MAGICS_HOST"


@dataclass(frozen=True)
class Target:
    """Which binding, model and host a prompt goes to, and why."""

    name: str
    model: str | None
    host: str | None
    reason: str


@magics_class
class LollmsMagics(Magics):
    """Stream answers from LoLLMs, Ollama and OpenAI-compatible servers into cells."""

    default_binding = Unicode(
        help=f"Binding used when a cell names none; empty or 'auto' chooses one ({ENV_BINDING})."
    ).tag(config=True)
    default_model = Unicode(help=f"Model of the default binding ({ENV_MODEL}).").tag(config=True)
    default_host = Unicode(help=f"Server URL of the default binding ({ENV_HOST}).").tag(config=True)
    default_format = CaselessStrEnum(FORMATS, "markdown", help="Format of answers.").tag(config=True)
    context_size = Int(4096, help="Tokens the conversation and prompt may fill.").tag(config=True)
    max_history = Int(50, help="Exchanges kept in the conversation.").tag(config=True)
    update_interval = Float(0.08, help="Seconds between two updates of a streaming answer.").tag(
        config=True
    )
    stream_to = CaselessStrEnum(
        ("auto", "display", "stdout"), "auto",
        help="Where answers stream: a notebook display, standard output, or chosen by the shell.",
    ).tag(config=True)
    auto_timeout = Float(0.5, help="Seconds each server may take to answer the automatic choice.").tag(
        config=True
    )

    @default("default_binding")
    def _binding_from_env(self) -> str:
        return os.environ.get(ENV_BINDING, "")

    @default("default_model")
    def _model_from_env(self) -> str:
        return os.environ.get(ENV_MODEL, "")

    @default("default_host")
    def _host_from_env(self) -> str:
        return os.environ.get(ENV_HOST, "")

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self.conversation = Conversation()
        self.keys = KeyStore()
        self.chosen: Target | None = None  # by %lollms use
        self.auto: Target | None = None  # the automatic choice, made once
        self._bindings: dict[tuple[Any, ...], Binding] = {}

    @property
    def ip(self) -> InteractiveShell:
        """The shell these magics are registered in."""
        assert self.shell is not None, "LollmsMagics is used outside a shell"
        return self.shell

    @no_var_expand
    @line_cell_magic
    def lollms(self, line: str, cell: str | None = None) -> None:
        """Ask a model; the answer streams into the cell.

        ::

            %%lollms [options]
            A prompt, where {name}, {name.attr} and {name[0]} are filled from your variables.

            %lollms [options] a one-line prompt
            %lollms COMMAND   (bindings, models, use, status, history, reset, key, help)

        Run ``%lollms help`` for the options and commands.
        """
        try:
            if cell is None and _commands.run(self, line):
                return
            self.ask(line, cell)
        except LollmsMagicsError as exc:  # before any answer: no server, missing extra...
            self.report(exc, debug="--debug" in line.split())

    # -- asking ------------------------------------------------------------

    def ask(self, line: str, cell: str | None) -> None:
        """Send the prompt of a ``%lollms`` line or ``%%lollms`` cell and show the answer."""
        args, source = parse_prompt(line, cell)
        source = source.strip()  # a cell's body ends with a newline the user did not type
        if not source:
            raise UsageError("%lollms: nothing to ask; write a prompt (see %lollms help)")
        if self.keys.redact(source) != source:
            raise UsageError(
                "%lollms: this prompt holds an API key, which would be sent and saved with the "
                "notebook; remove it (keys go in environment variables or %lollms key)"
            )
        if args.out and not (args.out.isidentifier() and not keyword.iskeyword(args.out)):
            raise UsageError(f"%lollms: -o needs a variable name, not {args.out!r}")
        try:  # every value is checked before a binding is chosen or a request sent
            options = validate_options({
                "n_predict": args.n_predict, "temperature": args.temperature,
                "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed,
            })
        except InvalidOptionError as exc:
            raise UsageError(f"%lollms: {exc}") from None
        images = [self._image(ref) for ref in args.image or ()]
        ns = self.ip.user_ns
        prompt = source if args.raw else fill(source, ns)
        system = args.system if args.raw or not args.system else fill(args.system, ns)

        binding = self.binding(self.target(args.binding, args.model, args.host))
        if args.new:
            self.conversation.clear()
        key = cell_key(self.ip, source if cell is not None else line)
        window = min(self.context_size, binding.context_size or self.context_size)
        budget = window - (args.n_predict or window // 4)
        messages = self.conversation.messages(key, prompt, budget=budget, system=system)
        try:
            response = binding.generate(
                messages, images=images, system=system, stream=not args.no_stream, **options
            )
        except (InvalidOptionError, InvalidImageError) as exc:
            raise UsageError(f"%lollms: {exc}") from None
        fmt = args.format or self.default_format
        extra = {"format": fmt, "stream": not args.no_stream, "history": len(messages) // 2}
        if images:
            extra["images"] = len(images)
        text = self._stream(response, args, extra)
        if text is not None:
            self.conversation.record(key, prompt, text, keep=self.max_history)
            if fmt == "code":
                self.ip.set_next_input(first_code_block(text))

    def _stream(self, response: Response, args: Any, extra: dict[str, Any]) -> str | None:
        """Show ``response`` as it streams, then finally; its text, or None when it failed."""
        live = LiveAnswer(
            rich=self._rich(), live=not args.no_stream, interval=self.update_interval,
            fmt=extra["format"],
        )
        try:
            live.consume(response)
        except KeyboardInterrupt:
            response.close()
            self._end(live, response, args.out, extra)
            print(f"lollms: interrupted; {len(live.text)} characters kept", file=sys.stderr)
            raise
        except LollmsMagicsError as exc:
            self._end(live, response, args.out, extra)
            self.report(exc, args.debug)
            return None
        self._end(live, response, args.out, extra)
        return live.text

    def _end(self, live: LiveAnswer, response: Response, out: str | None, extra: dict[str, Any]) -> None:
        """Show the final output (when any text came) and store the text in ``out``."""
        if live.text or response.done:
            metadata = self.keys.redact_data({**response.metadata(), **extra})
            assert isinstance(metadata, dict)
            live.finish(metadata)
        if out:
            self.ip.user_ns[out] = live.text

    def _image(self, ref: str) -> Any:
        """A ``-i`` value: a variable (path, bytes, PIL image) or else a file path."""
        try:
            return lookup(ref, self.ip.user_ns)
        except LookupError:
            pass
        if os.path.isfile(os.path.expanduser(ref)):
            return os.path.expanduser(ref)
        raise UsageError(f"%lollms: -i {ref}: no variable or file of that name")

    def _rich(self) -> bool:
        if self.stream_to == "auto":
            return has_rich_display(self.ip)
        return bool(self.stream_to == "display")

    def report(self, exc: BaseException, debug: bool = False) -> None:
        """Print ``exc`` as one line (keys removed), and its traceback under ``--debug``."""
        print(f"lollms: {self.keys.redact(str(exc))}", file=sys.stderr)
        if debug:
            self.ip.showtraceback()

    # -- choosing the binding ----------------------------------------------

    def configured(self) -> Target | None:
        """The default chosen by ``%lollms use``, configuration or environment, if any."""
        if self.chosen is not None:
            return self.chosen
        name = self.default_binding.strip()
        if not name or name.lower() == "auto":
            return None
        if os.environ.get(ENV_BINDING) == name:
            reason = f"set by the environment variable {ENV_BINDING}"
        else:
            reason = "set by the configuration LollmsMagics.default_binding"
        return Target(name, self.default_model or None, self.default_host or None, reason)

    def default_target(self) -> Target:
        """The kernel's default binding; makes the automatic choice on first need."""
        target = self.configured()
        if target is not None:
            return target
        if self.auto is None:
            try:
                from .auto import choose_binding
            except ImportError:
                raise LollmsMagicsError(
                    "no binding chosen: pick one with %lollms use BINDING or -b BINDING"
                ) from None
            choice = choose_binding(timeout=self.auto_timeout)
            reason = f"chosen automatically: {choice.reason}"
            self.auto = Target(choice.name, choice.model, choice.host, reason)
        return Target(
            self.auto.name,
            self.default_model or self.auto.model,
            self.default_host or self.auto.host,
            self.auto.reason,
        )

    def target(self, name: str | None, model: str | None, host: str | None) -> Target:
        """Where a prompt goes: the cell's ``-b/-m/--host`` over the kernel's default."""
        if name:
            base = self.configured()
            if base is None or base.name != name:  # a default's model fits only its binding
                base = Target(name, None, None, "chosen with -b")
        else:
            base = self.default_target()
        return Target(base.name, model or base.model, host or base.host, base.reason)

    def binding(self, target: Target) -> Binding:
        """The binding for ``target``, created once per (name, host, model, key)."""
        from .bindings import binding_class

        try:
            cls = binding_class(target.name)
        except UnknownBindingError as exc:
            raise UsageError(f"%lollms: {exc}") from None
        key = self.keys.get(target.name)
        env_key = os.environ.get(cls.key_env) if cls.key_env else None
        cache_key = (target.name, target.host, target.model, key or env_key)
        binding = self._bindings.get(cache_key)
        if binding is None:
            binding = cls(host=target.host, model=target.model, api_key=key)
            self._bindings[cache_key] = binding
        return binding

    def close(self) -> None:
        """Close every cached binding (their HTTP connections)."""
        for binding in self._bindings.values():
            binding.close()
        self._bindings.clear()

    def forget_bindings(self, name: str) -> None:
        """Close and drop the cached bindings called ``name`` (after a key change)."""
        for cache_key in [k for k in self._bindings if k[0] == name]:
            self._bindings.pop(cache_key).close()

    def history_tokens(self) -> int:
        """Estimated tokens the conversation holds."""
        return sum(
            estimate_tokens(e.prompt) + estimate_tokens(e.answer) for e in self.conversation.exchanges
        )
