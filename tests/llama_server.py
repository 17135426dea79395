"""llama-cpp-python's own OpenAI-compatible server, started for a test module and killed after it.

``tests/test_llama_server.py`` and ``tests/test_tools_models.py`` start it
(the latter with a function-calling chat format) through
:func:`running_llama_server`; it serves the embedded SmolLM2 GGUF on loopback.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from lollms_magics.bindings import llamacpp

# What ``python -m llama_cpp.server`` imports besides llama_cpp (its [server] extra).
SERVER_MODULES = ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
START_TIMEOUT = 180.0  # a deadline, left as soon as the server answers: imports crawl on a busy machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_llama_server(log_dir: Path, *extra_args: str) -> Iterator[str]:
    """The base URL (``.../v1``) of a running ``llama_cpp.server``, its output in ``log_dir/server.log``.

    ``extra_args`` go to the server's command line (``--chat_format ...``).
    Missing pieces fail the tests, never skip them: the test and local extras
    install them, so a green run means they ran. The server is killed at the end.
    """
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing or not llamacpp.llama_cpp_installed():
        pytest.fail(f"these tests need llama-cpp-python[server] ({', '.join(missing) or 'llama_cpp'} "
                    "missing): pip install -e '.[local,test]'", pytrace=False)
    model = llamacpp.default_model_path()
    if model is None:
        pytest.fail("these tests need the embedded model: pip install -e '.[local]'", pytrace=False)
    port = _free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(llamacpp.DEFAULT_CTX), "--model_alias", "smollm2", "--verbose", "false",
        *extra_args,
    ]
    # The log goes to a file: a pipe nobody reads would fill up and block the server.
    log_path = log_dir / "server.log"
    with log_path.open("wb") as log:  # the server holds its own copy of the descriptor
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                error = log_path.read_text(errors="replace")
                pytest.fail(f"llama_cpp.server exited with {process.returncode}: {error[-2000:]}")
            try:
                if httpx.get(url + "/models", timeout=1.0, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer within {START_TIMEOUT:g} s")
            time.sleep(0.1)
        yield url
    finally:
        process.kill()
        process.wait(timeout=10)
