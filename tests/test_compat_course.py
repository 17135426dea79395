"""The four scripts of the lollms-client course, run unchanged but for the import, on each backend.

Each script is run as its own process against a loopback server of this
process. The scripts hard-code ``http://localhost:9600`` (or nothing), so the
backend is chosen the way a user would run a course script on another
server without editing it: ``LOLLMS_CLIENT_BINDING`` / ``LOLLMS_CLIENT_HOST``
(see ``lollms_magics.compat.client``). What is asserted is what the course's
code prints, line by line, with the values the loopback server gives.

The copies run are ``tests/course/*.py``; when the course is beside the
checkout (``../shared/seed``, as in CI) they are first checked against it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.course import COURSE_DIR, SCRIPTS, convert, extract, seed_dir
from tests.servers import (
    LOLLMS_KEY,
    A1111Server,
    ComfyUIServer,
    LollmsServer,
    LollmsWebuiServer,
    OllamaServer,
    OpenAIServer,
)

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TEXT_BACKENDS = ("lollms_webui", "lollms_server", "ollama", "openai")
PROMPT = "What is the capital of France?"


def test_the_copies_are_the_course_but_for_the_import_lines() -> None:
    seeds = sorted(seed_dir().glob("*.txt"))
    if not seeds:
        if os.environ.get("CI"):  # CI always has it: its absence there is a failure
            pytest.fail(f"the course is not beside the checkout ({seed_dir()})")
        pytest.skip(f"the course is not beside the checkout ({seed_dir()})")
    blocks = extract("\n".join(p.read_text(encoding="utf-8") for p in seeds))
    assert set(SCRIPTS) <= set(blocks)
    for name in SCRIPTS:
        copy = (COURSE_DIR / name).read_text(encoding="utf-8")
        assert copy == convert(blocks[name]), name
        changed = [
            (a, b) for a, b in zip(blocks[name].splitlines(), copy.splitlines(), strict=True) if a != b
        ]
        assert changed and all(a.startswith("from lollms_client") for a, _ in changed), name
        assert all(b.startswith("from lollms_magics") for _, b in changed), name


# ------------------------------------------------------------------ harness


def _servers(kind: str):
    return {
        "lollms_webui": LollmsWebuiServer,
        "lollms_server": LollmsServer,
        "ollama": OllamaServer,
        "openai": OpenAIServer,
        "a1111": A1111Server,
        "comfyui": ComfyUIServer,
    }[kind]()


@pytest.fixture
def server(request):
    srv = _servers(request.param)
    srv.stall_timeout = 5.0
    srv.start()
    srv.kind = request.param
    try:
        yield srv
    finally:
        srv.stop()


def _backend_env(srv) -> dict[str, str]:
    """The variables that point the course's client at ``srv``."""
    kind = srv.kind
    env = {"LOLLMS_CLIENT_HOST": srv.url}
    if kind == "lollms_server":
        env["LOLLMS_API_KEY"] = LOLLMS_KEY
    elif kind in ("ollama", "openai"):
        env["LOLLMS_CLIENT_BINDING"] = kind
    return env


def _home(tmp_path: Path) -> Path:
    """A home, a PATH with a silent ``xdg-open``, and docling declared under its course name."""
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    opener = bin_dir / "xdg-open"
    opener.write_text(f"#!/bin/sh\necho \"$1\" >> {tmp_path / 'opened.txt'}\n")
    opener.chmod(0o755)
    # The course asks pipmaster whether the distribution "docling" is installed, else pip-installs
    # it (6 GB with torch). The lean docling-slim of the `docs` extra provides the same `docling`
    # module under another distribution name, so a metadata entry says so.
    import importlib.metadata

    site = tmp_path / "site"
    info = site / "docling-0.0.0.dist-info"
    info.mkdir(parents=True)
    version = importlib.metadata.version("docling-slim")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: docling\nVersion: {version}\n")
    return home


def run_script(name: str, tmp_path: Path, extra_env: dict[str, str]) -> tuple[str, str]:
    """Run the course script ``name``; its stdout and stderr without colours."""
    home = _home(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOLLMS", "OLLAMA", "OPENAI", "A1111",
                                                                    "COMFYUI"))}
    env.update({
        "HOME": str(home),
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)]),
        # Were pipmaster to install anything, it would fail at once instead of downloading.
        "PIP_NO_INDEX": "1",
        "PIP_INDEX_URL": "http://127.0.0.1:9/",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra_env)
    done = subprocess.run(
        [sys.executable, str(COURSE_DIR / name)], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=90,
    )
    assert done.returncode == 0, done.stderr
    return ANSI.sub("", done.stdout), ANSI.sub("", done.stderr)


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


# ascii_colors writes "INFO:ASCIIColors:msg", or "2026-01-01 10:00:00 - ASCIIColors - INFO - msg" once
# set_log_file was called.
_LOG = re.compile(
    r"^(?:(INFO|WARNING|ERROR):ASCIIColors:|[\d-]+ [\d:]+ - ASCIIColors - (INFO|WARNING|ERROR) - )(.*)$"
)


def logged(text: str) -> list[str]:
    """ASCIIColors' log records in ``text`` as ``LEVEL: message`` (whichever format it used)."""
    found = []
    for line in lines(text):
        m = _LOG.match(line)
        if m and "set_log_file is DEPRECATED" not in line:
            found.append(f"{m.group(1) or m.group(2)}: {m.group(3)}")
    return found


def generation_prompts(srv) -> list[str]:
    """The bodies of the generation requests ``srv`` received, as text, in order."""
    import json

    paths = ("/lollms_generate", "/api/chat", "/api/generate", "/v1/chat/completions")
    return [json.dumps(r.json) for r in srv.requests if r.method == "POST" and r.path in paths]


# ------------------------------------------------------------------ 1. client setup


@pytest.mark.parametrize("server", TEXT_BACKENDS, indirect=True)
def test_client_setup_prints_the_host_and_the_binding(server, tmp_path: Path) -> None:
    out, err = run_script("client_setup_example.py", tmp_path, _backend_env(server))
    binding = {"ollama": "ollama", "openai": "openai"}.get(server.kind, "lollms")
    assert lines(out) == [f"Default client initialized for: {server.url}"]
    assert logged(err) == [f"INFO: Using binding: {binding}, Model:"]  # "" is the server's choice
    assert server.requests == []  # making a client sends nothing, as in lollms-client


# ------------------------------------------------------------------ 2. sequential summarize


def _summary_reply(prompt: str) -> str:
    if "Write a summary of the whole document" in prompt:
        return "Transformers and self-attention power LLMs, which need responsible use."
    return "- Transformers use self-attention.\n- Training is pre-training then fine-tuning."


@pytest.mark.parametrize("server", TEXT_BACKENDS, indirect=True)
def test_sequential_summarize_prints_the_summary(server, tmp_path: Path) -> None:
    server.reply = _summary_reply
    out, err = run_script("sequential_summarize_example.py", tmp_path, _backend_env(server))
    assert "Installing docling..." not in err  # pipmaster found docling: nothing was installed
    assert logged(err) == [
        "INFO: LollmsClient initialized for summarization.",
        "INFO: Simulated article text loaded.",
        "INFO: Starting sequential summarization...",
    ]
    assert lines(out) == [
        "",
        "--- Generated Summary ---",
        "Transformers and self-attention power LLMs, which need responsible use.",
    ]
    # The article fits one 2048-token chunk: its notes, then the final summary.
    chunk, final = generation_prompts(server)
    assert "Please extract the key points and main arguments from this text chunk." in chunk
    assert "The development of smaller, more efficient models is also a key trend." in chunk
    assert "Compile the accumulated information into a final, coherent summary." in final
    assert "Training is pre-training then fine-tuning." in final  # the notes reached the final call
    assert (tmp_path / "lollms_client_module_log.log").exists()


# ------------------------------------------------------------------ 3. text to image


TTI_BACKENDS = ("lollms_webui", "lollms_server", "a1111", "comfyui")


def _tti_env(srv) -> dict[str, str]:
    if srv.kind == "lollms_webui":
        return {"LOLLMS_CLIENT_HOST": srv.url, "LOLLMS_CLIENT_ID": "loopback-client-id"}
    if srv.kind == "lollms_server":
        return {"LOLLMS_CLIENT_HOST": srv.url, "LOLLMS_API_KEY": LOLLMS_KEY}
    # The text client stays on lollms (the course's host); only the picture goes elsewhere.
    return {"LOLLMS_CLIENT_TTI_BINDING": srv.kind, "LOLLMS_CLIENT_TTI_HOST": srv.url}


@pytest.mark.parametrize("server", TTI_BACKENDS, indirect=True)
def test_tti_lists_services_and_saves_the_picture(server, tmp_path: Path) -> None:
    out, err = run_script("tti_example.py", tmp_path, _tti_env(server))
    saved = tmp_path / "home" / "Documents" / "lollms_generated_images" / "ai_fantasy_owl.png"
    text = lines(out) + lines(err)
    assert "--- Listing TTI Services ---" in text
    if server.kind == "lollms_webui":
        assert "  1. Name: diffusers, Caption: Diffusers" in text
        assert "  2. Name: dall-e, Caption: Dall-E" in text
        assert "  - Name: model, Type: str, Value: stabilityai/sdxl-turbo, Help: Model" in text
        assert "  - Name: steps, Type: int, Value: 4, Help: Sampling steps" in text
    elif server.kind == "lollms_server":
        assert "  1. Name: diffusers, Caption: diffusers" in text  # the new server's image bindings
        assert "No active TTI service or settings template configured on the server." in text
    else:
        assert "No TTI services listed. Check lollms TTI configuration." in text
    made = [ln for ln in text if ln.startswith("Image generated successfully (")]
    assert len(made) == 1, out + err
    assert int(made[0].split("(")[1].split()[0]) > 100
    assert f"Image saved as {saved}" in text
    with Image.open(saved) as picture:
        assert picture.format == "PNG"
        assert picture.size == (768, 512)
    assert (tmp_path / "opened.txt").read_text().strip() == str(saved)
    assert "error" not in (out + err).lower()


# ------------------------------------------------------------------ 4. direct binding, streaming


@pytest.mark.parametrize("server", TEXT_BACKENDS, indirect=True)
def test_direct_binding_streams_the_answer(server, tmp_path: Path) -> None:
    out, err = run_script("direct_binding_interaction.py", tmp_path, _backend_env(server))
    binding = {"ollama": "ollama", "openai": "openai"}.get(server.kind, "lollms")
    host = server.url  # lc.host_address: what the client was given
    models = {"ollama": ["test-model:latest", "vision-model:latest"],
              "lollms_server": ["ollama/test-model", "ollama/vision-model"]}.get(
        server.kind, ["test-model", "vision-model"])
    assert lines(out) == [
        f"--- Interacting with '{binding}' binding ---",
        "",
        "1. Listing Models from Binding:",
        "Available models:",
        *[f"  - {m}" for m in models],
        "",
        "2. Generating Text (and maybe processing an image):",
        f"Prompt: {PROMPT}",
        "Response (streaming):",
        f"Echo: {PROMPT}",
    ]
    assert f"INFO: Host: {host}, Model: Default" in logged(err)
    body = server.last_request.json
    assert body.get("stream") is True
    limit = body.get("n_predict") or body.get("max_tokens") or (body.get("options") or {}).get("num_predict")
    assert limit == 200


def test_direct_binding_reports_a_dead_server_as_the_course_expects(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    out, err = run_script("direct_binding_interaction.py", tmp_path, {"LOLLMS_CLIENT_HOST": dead})
    text = lines(out) + lines(err)
    listed = [ln for ln in text if ln.startswith("No models listed or error: ")]
    assert len(listed) == 1 and "'status': False" in listed[0]
    assert f"cannot reach lollms at {dead}" in listed[0]
    streamed = [ln for ln in text if ln.startswith("Streaming Error from binding: ")]
    assert len(streamed) == 1 and f"cannot reach lollms at {dead}" in streamed[0]
    generation = [ln for ln in text if ln.startswith("ERROR:ASCIIColors:Generation error: ")]
    assert len(generation) == 1 and f"cannot reach lollms at {dead}" in generation[0]
    assert "An error occurred with binding" not in out + err  # nothing raised


@pytest.mark.parametrize("server", ["openai"], indirect=True)
def test_tti_on_openai_reports_the_size_it_refuses(server, tmp_path: Path) -> None:
    # OpenAI's image sizes are fixed (DALL-E 2: 256, 512 or 1024 square): the course's 768x512 is
    # refused there, with lollms-client as here; the script reports it and saves nothing.
    out, err = run_script("tti_example.py", tmp_path, _tti_env(server))
    text = lines(out) + lines(err)
    # An OpenAI-compatible server has no services: its models are listed as the services.
    listed = [ln for ln in text if ln.startswith("  ") and "Name: " in ln]
    assert listed == [f"  {i}. Name: {m}, Caption: {m}" for i, m in enumerate(server.models, 1)]
    assert "No active TTI service or settings template configured on the server." in text
    refused = [ln for ln in logged(err) if ln.startswith("ERROR: An TTI-related error occurred: ")]
    assert refused == [
        f"ERROR: An TTI-related error occurred: openai at {server.url}/v1/images/generations refused the "
        "request (400: '768x512' is not one of ['256x256', '512x512', '1024x1024'] - 'size')"
    ]
    assert server.last_request.json["size"] == "768x512"
    assert not (tmp_path / "home" / "Documents" / "lollms_generated_images" / "ai_fantasy_owl.png").exists()
