"""The ``%lollms`` line magic and ``%%lollms`` cell magic: a thin adapter over the Session.

A magic parses its line, hands the work to the kernel's default
:class:`~lollms_magics.core.session.Session`, and shows what comes back.
Mistakes in the line are ``UsageError`` (one line, no traceback). A backend
failure fails the cell, so Run All, nbval and papermill stop, but shows one
line with the action to take (the traceback only with ``--debug``); text
received before it stays displayed, marked incomplete, and in ``-o VAR``.
"""

from __future__ import annotations

import keyword
import os
import sys
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, CaselessStrEnum, Dict, Float, Int, List, Unicode, default, observe

from ..core.history import cell_key
from ..core.interpolate import DEFAULT_LIMIT, lookup
from ..core.session import ENV_BINDING, ENV_HOST, ENV_MODEL, Session, Target, default_session
from ..core.structured import StructuredResponse
from ..errors import (
    DocumentError,
    InvalidImageError,
    InvalidOptionError,
    LollmsMagicsError,
    PromptError,
    UnknownBindingError,
)
from . import commands, docs_view, tools_view
from .args import parse_prompt
from .display import FORMATS, LiveAnswer, first_code_block, has_rich_display
from .failure import CellFailure
from .plain import say

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from ..response import Response

__all__ = ["LollmsMagics"]

_UNSET = object()
_USER_ERRORS = (InvalidOptionError, InvalidImageError, PromptError, UnknownBindingError, DocumentError)


@magics_class
class LollmsMagics(Magics):
    """Stream answers from LoLLMs, Ollama, OpenAI-compatible servers and an embedded model into cells."""

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
    timeout = Float(120.0, help="Seconds a server may stay silent before the answer is given up.").tag(
        config=True
    )
    footer = Bool(True, help="Show a quiet line of figures (model, tokens, speed, time) under answers.").tag(
        config=True
    )
    fill_limit = Int(DEFAULT_LIMIT, help="Characters one {variable} may bring into a prompt.").tag(
        config=True
    )

    context_cells = Int(
        0, help="Executed cells sent before each prompt (their code and value), as --context N does.",
    ).tag(config=True)
    fallbacks = List(
        Unicode(), help="Backends (BINDING[:MODEL]) that answer, in order, when the chosen one fails before "
        "its first text: refused, timeout, 429 after retries, 5xx, quota (--fallback-to for one cell).",
    ).tag(config=True)
    prices = Dict(
        help="Your prices, model (or binding:model) -> (input, output) per million tokens, for the cost "
        "column of %lollms usage; none are built in (they go stale).",
    ).tag(config=True)

    @default("default_binding")
    def _binding_from_env(self) -> str:
        return os.environ.get(ENV_BINDING, "")

    @default("default_model")
    def _model_from_env(self) -> str:
        return os.environ.get(ENV_MODEL, "")

    @default("default_host")
    def _host_from_env(self) -> str:
        return os.environ.get(ENV_HOST, "")

    def __init__(self, shell: Any = None, session: Session | None = None, **kwargs: Any) -> None:
        # Set before the traits: configuration applied by the base class
        # notifies _on_setting, which needs the session.
        self._session = session  # None: whatever the kernel's default session is then
        self._code_cells: set[str] = set()  # cells whose -f code already added a cell
        super().__init__(shell, **kwargs)
        if shell is not None:  # keep the last failing cell, for %lollms explain and fix
            from .explain import watch

            watch(shell)

    @observe(
        "default_binding", "default_model", "default_host", "context_size", "max_history",
        "auto_timeout", "timeout", "fill_limit", "fallbacks",
    )
    def _on_setting(self, change: Any) -> None:
        self._apply(change["name"])

    @property
    def session(self) -> Session:
        """The session these magics use: the one given, else the kernel's default (looked up each time)."""
        return self._session or default_session()

    def _apply(self, name: str) -> None:
        """Carry the ``%config`` setting ``name`` into the session, when the user sets it.

        Only then: a session configured in Python (``Session(context_size=...)``,
        ``LollmsClient(...).make_default()``) keeps its values through every magic.
        """
        s = self.session
        if name in ("context_size", "max_history", "auto_timeout", "fill_limit"):
            setattr(s, name, getattr(self, name))
        elif name == "timeout":
            s.binding_config["read_timeout"] = self.timeout
        elif name == "fallbacks":
            try:
                s.fallbacks = list(self.fallbacks)
            except LollmsMagicsError as exc:  # a binding name that does not exist
                raise UsageError(f"LollmsMagics.fallbacks: {exc}") from None
        else:  # default_binding, default_model, default_host
            wanted = self.default_binding.strip()
            if not wanted or wanted.lower() == "auto":
                if name == "default_binding":  # a model or host alone names no backend
                    s.use("auto")
                return
            from_env = os.environ.get(ENV_BINDING) == wanted
            s._chosen = Target(
                wanted, self.default_model or None, self.default_host or None,
                f"set by the environment variable {ENV_BINDING}" if from_env
                else "set by the configuration LollmsMagics.default_binding",
            )

    @property
    def ip(self) -> InteractiveShell:
        """The shell these magics are registered in."""
        assert self.shell is not None, "LollmsMagics is used outside a shell"
        return self.shell

    @no_var_expand
    @line_cell_magic
    def lollms(self, line: str, cell: str | None = None) -> Any:
        """Ask a model; the answer streams into the cell.

        ::

            %%lollms [options]
            A prompt, where {name}, {name.attr} and {name[0]} are filled from your variables.

            %lollms [options] a one-line prompt
            %lollms COMMAND   (bindings, models, use, status, history, reset, key, help)

        Run ``%lollms help`` for the options, commands and settings.
        """
        debug = "--debug" in line.split()
        try:
            if commands.run(self, line, cell):
                return None
            return self.ask(line, cell)
        except _USER_ERRORS as exc:
            raise UsageError(f"%lollms: {self.session.keys.redact(str(exc))}") from None
        except LollmsMagicsError as exc:
            if debug:
                raise
            raise CellFailure(self.session.keys.redact(str(exc))) from None

    # -- asking ------------------------------------------------------------

    def ask(self, line: str, cell: str | None) -> Any:
        """Send the prompt of a ``%lollms`` line or ``%%lollms`` cell and show the answer.

        With ``--each``, the prompt is a template asked once per item (:mod:`.each`);
        the cell's value is then the MapResult when there is no ``-o``.
        """
        args, source = parse_prompt(line, cell)
        if args.fallback_to is None:
            return self._ask(args, source, line, cell)
        session = self.session
        kept = session.fallbacks
        session.fallbacks = args.fallback_to  # for this cell only; names checked now
        try:
            return self._ask(args, source, line, cell)
        finally:
            session.fallbacks = kept

    def _ask(self, args: Any, source: str, line: str, cell: str | None) -> Any:
        """:meth:`ask` once the line is parsed (and ``--fallback-to`` set for the cell)."""
        source = source.strip()  # a cell's body ends with a newline the user did not type
        if not source:
            raise UsageError("%lollms: nothing to ask; write a prompt (see %lollms help)")
        tools = tools_view.for_cell(args, self.ip.user_ns, rich=self._rich(), redact=self.session.keys.redact)
        if args.each is not None:
            if args.context:
                raise UsageError("%lollms: --context goes with one prompt, not with --each")
            from .each import each_command

            return each_command(self, args, source)
        if args.concurrency is not None or args.hosts or args.fail_fast:
            raise UsageError("%lollms: --concurrency, --hosts and --fail-fast go with --each ITEMS")
        if args.out and not (args.out.isidentifier() and not keyword.iskeyword(args.out)):
            raise UsageError(f"%lollms: -o needs a variable name, not {args.out!r}")
        options = {
            "n_predict": args.n_predict, "temperature": args.temperature, "top_k": args.top_k,
            "top_p": args.top_p, "seed": args.seed, "repeat_penalty": args.repeat_penalty,
            "ctx_size": args.ctx_size, "stop": args.stop,
        }
        config = self.session.binding_config
        kept = config.get("read_timeout", _UNSET)
        if args.timeout is not None:
            if args.timeout <= 0:
                raise UsageError("%lollms: --timeout needs a positive number of seconds")
            config["read_timeout"] = args.timeout
        images = [self._image(ref) for ref in args.image or ()]
        schema = self._schema(args.schema) if args.schema else None
        key = cell_key(self.ip, source if cell is not None else line)
        try:
            response = self.session.ask(
                source, binding=args.binding, model=args.model, host=args.host, system=args.system,
                images=images, stream=not args.no_stream,
                namespace=None if args.raw else self.ip.user_ns, key=key, new=args.new, schema=schema,
                docs=docs_view.source_of(self.ip.user_ns, args.docs) if args.docs else None,
                context=self._context(args.context), **(tools.ask_options() if tools else {}),
                **{k: v for k, v in options.items() if v is not None},
            )
        finally:
            if args.timeout is not None:  # the timeout was for this cell only
                if kept is _UNSET:
                    config.pop("read_timeout", None)
                else:
                    config["read_timeout"] = kept
        fmt = args.format or self.default_format
        extra = {"format": fmt, "stream": not args.no_stream}
        if images:
            extra["images"] = len(images)
        text = self._stream(response, args, extra)
        docs_view.show_passages(response, text, self._rich(), self.session.keys.redact)
        if tools is not None:
            tools.finish(response)
        if fmt == "code" and key not in self._code_cells and response.done and schema is None:
            self._code_cells.add(key)
            self.ip.set_next_input(first_code_block(text))

    def _stream(self, response: Response, args: Any, extra: dict[str, Any]) -> str:
        """Show ``response`` as it streams, then finally; its text. Failures propagate after showing."""
        live = LiveAnswer(
            rich=self._rich(), live=not args.no_stream, interval=self.update_interval,
            fmt=extra["format"], show_footer=self.footer,
        )
        try:
            live.consume(response)
        except KeyboardInterrupt:
            response.close()
            self._end(live, response, args.out, extra)
            say(f"lollms: interrupted; {len(live.text)} characters kept", file=sys.stderr)
            raise
        except LollmsMagicsError:
            self._end(live, response, args.out, extra)
            raise
        self._end(live, response, args.out, extra)
        return live.text

    def _end(self, live: LiveAnswer, response: Response, out: str | None, extra: dict[str, Any]) -> None:
        """Show the final output (when any text came) and store the text in ``out``."""
        # An answer asked for as data, complete, is shown and stored as its data (it was checked).
        data = response.data if isinstance(response, StructuredResponse) and response.done else _UNSET
        if live.text or response.done:
            keys = self.session.keys
            metadata = keys.redact_data({**response.metadata(), **extra})
            assert isinstance(metadata, dict)
            notes = [keys.redact(note) for note in response.notes]
            if data is not _UNSET:
                live.finish(response, metadata, notes, data=data)
            else:
                live.finish(response, metadata, notes)
        elif response.notes and not live.rich:
            for note in response.notes:
                say(f"lollms: {note}", file=sys.stderr)
        if out:
            self.ip.user_ns[out] = live.text if data is _UNSET else data

    def _context(self, n: int | None) -> list[Any] | None:
        """The cells ``--context N`` (else ``context_cells``) sends: the shell's last executed cells."""
        from ..core.context import shell_cells

        n = self.context_cells if n is None else n
        if n < 0:
            raise UsageError("%lollms: --context needs a number of cells, 0 or more")
        return shell_cells(self.ip, n) if n else None

    def _schema(self, ref: str) -> Any:
        """A ``--schema`` value: a variable holding a schema, else the JSON Schema or short form written."""
        try:
            return lookup(ref, self.ip.user_ns)
        except LookupError:
            pass
        if ref.strip().isidentifier() and ":" not in ref:
            raise UsageError(
                f"%lollms: --schema {ref}: no variable of that name; give a variable holding a schema, "
                'or a short form such as --schema "name: str, year: int"'
            )
        return ref

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

    def close(self) -> None:
        """Close the connections of the session's bindings."""
        self.session.close()
