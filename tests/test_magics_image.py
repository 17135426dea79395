"""%lollms image, %%lollms image and %lollms tti in a real InteractiveShell, against the image loopbacks."""

from __future__ import annotations

import _thread
import base64
import io
import json
import re
import socket
import threading
import time

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from PIL import Image

from lollms_magics.errors import UnsupportedOptionWarning
from tests.servers import LOLLMS_KEY
from tests.shell import magics_shell

WEBUI_ID = "loopback-client-id"
RED = "\x1b[0;31m"


@pytest.fixture
def ip(monkeypatch):
    """The shell with fresh magics; no image server is found by accident on the usual ports."""
    unset = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LOLLMS_API_KEY", "LOLLMS_CLIENT_ID", "A1111_API_AUTH")
    closed = {name: closed_port_url() for name in ("LOLLMS_HOST", "A1111_HOST", "COMFYUI_HOST")}
    with magics_shell(monkeypatch, unset=unset, setenv=closed, load_ext=True) as shell:
        yield shell


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def run(ip, line, body=None):
    with capture_output() as cap:
        if body is None:
            ip.run_line_magic("lollms", line)
        else:
            ip.run_cell_magic("lollms", line, body)
    return cap


def failing(ip, source):
    with capture_output() as cap:
        result = ip.run_cell(source)
    assert result.error_in_exec is not None, "the cell did not fail"
    return result.error_in_exec, cap


def picture(output, mime="image/png"):
    return Image.open(io.BytesIO(base64.b64decode(output.data[mime])))


SERVERS = [
    ("a1111_server", "a1111", "", "image/png"),
    ("comfyui_server", "comfyui", "", "image/png"),
    ("lollms_webui_server", "lollms", "", "image/jpeg"),
    ("lollms_server", "lollms", "", "image/png"),
    ("openai_server", "openai", "-m dall-e-2", "image/png"),
]


@pytest.mark.parametrize("fixture,binding,extra,mime", SERVERS)
def test_each_server_shows_the_picture_with_its_metadata(
    ip, request, monkeypatch, fixture, binding, extra, mime
):
    server = request.getfixturevalue(fixture)
    if fixture == "lollms_server":
        monkeypatch.setenv("LOLLMS_API_KEY", LOLLMS_KEY)
    cap = run(ip, f'image -b {binding} --host {server.url} {extra} -W 512 -H 512 "a majestic owl"')
    last = cap.outputs[-1]
    img = picture(last, mime)
    assert img.size == (512, 512) and img.format == mime.split("/")[1].upper()
    meta = last.metadata["lollms_magics"]
    assert meta["prompt"] == "a majestic owl" and meta["binding"] == binding
    assert meta["size"] == [[512, 512]] and (meta["width"], meta["height"]) == (512, 512)
    assert last.metadata[mime] == {"width": 512, "height": 512}
    saved = json.dumps([o.data.get("text/plain") for o in cap.outputs] + [o.metadata for o in cap.outputs])
    assert LOLLMS_KEY not in saved and WEBUI_ID not in saved


def test_a1111_shows_a_progress_bar_then_the_picture_in_its_place(ip, a1111_server):
    a1111_server.step_delay = 0.01
    ip.lollms.session.use_image("a1111", host=a1111_server.url, poll_interval=0.02)
    cap = run(ip, "image --steps 60 --seed 9 --cfg 5 a lighthouse")
    first, last = cap.outputs[0], cap.outputs[-1]
    assert not first.update and all(o.update for o in cap.outputs[1:])  # one display, updated
    bars = [re.search(r'value="([0-9.]+)"', o.data.get("text/html", "")) for o in cap.outputs[:-1]]
    values = [float(m.group(1)) for m in bars if m]
    assert len(values) >= 2 and values == sorted(values) and values[-1] > values[0]
    meta = last.metadata["lollms_magics"]
    assert (meta["seed"], meta["steps"], meta["cfg_scale"]) == (9, 60, 5.0)
    assert picture(last).size == (512, 512)


def test_comfyui_shows_a_waiting_indicator_then_its_progress(ip, comfyui_server):
    comfyui_server.step_delay = 0.01
    ip.lollms.session.use_image("comfyui", host=comfyui_server.url, poll_interval=0.02)
    cap = run(ip, "image --steps 40 -W 256 -H 256 an owl")
    waiting = cap.outputs[0].data["text/html"]
    assert '<progress style="width:16em"></progress>' in waiting  # no value yet: the browser's waiting bar
    bars = [re.search(r'value="([0-9.]+)"', o.data.get("text/html", "")) for o in cap.outputs[1:-1]]
    values = [float(m.group(1)) for m in bars if m]
    assert values and values == sorted(values)  # then the sampler's steps, from ComfyUI's /ws feed
    assert picture(cap.outputs[-1]).size == (256, 256)
    assert isinstance(cap.outputs[-1].metadata["lollms_magics"]["seed"], int)  # chosen, so known


def test_cell_form_fills_variables_and_out_and_save(ip, a1111_server, tmp_path):
    ip.user_ns.update(animal="fox", painter="Hokusai")
    target = tmp_path / "pics"
    line = f"image -b a1111 --host {a1111_server.url} -n 2 -W 64 -H 48 --negative blurry"
    line += f" --save {target}/ --out pics"
    cap = run(ip, line, "A {animal} in the style of {painter}\n")
    sent = a1111_server.requests_to("/sdapi/v1/txt2img")[-1].json
    assert sent["prompt"] == "A fox in the style of Hokusai" and sent["negative_prompt"] == "blurry"
    last = cap.outputs[-1]
    assert last.data["text/html"].count("<img ") == 2  # side by side
    pics = ip.user_ns["pics"]
    assert [p.size for p in pics] == [(64, 48), (64, 48)]
    files = sorted(target.iterdir())
    assert len(files) == 2 and all(Image.open(f).size == (64, 48) for f in files)
    provenance = json.loads(Image.open(files[0]).text["lollms_magics"])  # the file says how it was made
    assert provenance["prompt"] == "A fox in the style of Hokusai" and provenance["binding"] == "a1111"
    assert provenance["negative_prompt"] == "blurry"
    assert provenance["seed"] == last.metadata["lollms_magics"]["seed"] != -1
    assert cap.stdout.count("lollms: saved ") == 2


def test_save_never_overwrites(ip, a1111_server, tmp_path):
    path = tmp_path / "owl.png"
    path.write_bytes(b"precious")
    cap = run(ip, f"image -b a1111 --host {a1111_server.url} -W 32 -H 32 --save {path} an owl")
    assert path.read_bytes() == b"precious"
    made = tmp_path / "owl-1.png"
    assert Image.open(made).size == (32, 32)
    assert f"lollms: saved {made} (owl.png exists, not replaced)" in cap.stdout
    jpg = tmp_path / "owl.jpg"
    run(ip, f"image -b a1111 --host {a1111_server.url} -W 32 -H 32 --save {jpg} an owl")
    assert Image.open(jpg).format == "JPEG"  # the suffix asked for another format: converted


def test_tti_commands(ip, lollms_webui_server, a1111_server):
    out = run(ip, f"tti use lollms --host {lollms_webui_server.url} --client-id {WEBUI_ID}").stdout
    assert out.strip() == f"lollms: pictures from lollms at {lollms_webui_server.url}"
    assert "diffusers: Diffusers" in run(ip, "tti services").stdout
    assert "steps = 4" in run(ip, "tti settings").stdout
    assert "image settings changed" in run(ip, "tti set steps=12").stdout
    assert lollms_webui_server.tti_settings[1]["value"] == 12
    assert "stabilityai/sdxl-turbo" in run(ip, "tti models").stdout
    everything = json.dumps([run(ip, c).stdout for c in ("tti services", "tti settings", "tti models")])
    assert WEBUI_ID not in everything
    run(ip, f"tti use a1111:sd_xl_base_1.0 --host {a1111_server.url}")
    run(ip, "image -W 32 -H 32 an owl")
    assert a1111_server.jobs[-1]["checkpoint"] == "sd_xl_base_1.0.safetensors [31e35c80fc]"
    assert "lollms: pictures back to the automatic choice" in run(ip, "tti use auto").stdout
    with pytest.raises(UsageError, match=re.escape("usage: %lollms tti services|settings|models")):
        run(ip, "tti dance")
    with pytest.raises(UsageError, match="no image binding named 'dalle'"):
        run(ip, "tti use dalle")


def test_user_mistakes_are_usage_errors(ip, a1111_server):
    with pytest.raises(UsageError, match="nothing to draw"):
        run(ip, f"image -b a1111 --host {a1111_server.url}")
    with pytest.raises(UsageError, match="width must be a positive whole number, not -5"):
        run(ip, f"image -b a1111 --host {a1111_server.url} -W -5 an owl")
    with pytest.raises(UsageError, match="--out needs a variable name"):
        run(ip, f"image -b a1111 --host {a1111_server.url} --out 3x an owl")
    assert not a1111_server.requests_to("/sdapi/v1/txt2img")


def test_unsupported_options_warn(ip, lollms_webui_server):
    with pytest.warns(UnsupportedOptionWarning, match="lollms cannot honour seed, steps; they are not sent"):
        run(ip, f"image -b lollms --host {lollms_webui_server.url} --seed 3 --steps 9 -W 64 -H 64 owl")


# -- each failure: one line, the cell fails -------------------------------------------


def one_line(cap):
    lines = cap.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(RED + "lollms: "), cap.stdout
    assert "Traceback" not in cap.stdout + cap.stderr
    return lines[0]


def test_unreachable(ip):
    url = closed_port_url()
    error, cap = failing(ip, f"%lollms image -b a1111 --host {url} an owl")
    assert type(error).__name__ == "CellFailure"
    assert f"cannot reach a1111 at {url}" in one_line(cap)


def test_nothing_found_by_the_automatic_choice(ip):
    _, cap = failing(ip, "%lollms image an owl")
    assert "no image server found" in one_line(cap)


def test_missing_and_stale_client_id(ip, lollms_webui_server):
    _, cap = failing(ip, f"%lollms tti services -b lollms --host {lollms_webui_server.url}")
    assert "needs a client_id to list image services" in one_line(cap)
    ip.lollms.session.use_image("lollms", host=lollms_webui_server.url, client_id="stale-id-77")
    _, cap = failing(ip, "%lollms tti settings")
    line = one_line(cap)
    assert (
        "does not know this client_id (400: Not accessible without id)" in line and "stale-id-77" not in line
    )


def test_unknown_model(ip, comfyui_server):
    _, cap = failing(ip, f"%lollms image -b comfyui --host {comfyui_server.url} -m ghost.safetensors an owl")
    assert "has no checkpoint 'ghost.safetensors'" in one_line(cap)


def test_content_filter(ip, openai_server):
    _, cap = failing(
        ip, f"%lollms image -b openai --host {openai_server.url} -m dall-e-3 something forbidden"
    )
    assert "refused the prompt: its safety system rejected it (content_policy_violation)" in one_line(cap)


def test_timeout(ip, a1111_server):
    a1111_server.step_delay = 0.05
    _, cap = failing(ip, f"%lollms image -b a1111 --host {a1111_server.url} --timeout 0.3 --steps 100 owl")
    assert "did not finish within 0.3 s" in one_line(cap)


def test_not_an_image(ip, openai_server, monkeypatch):
    import tests.servers.openai_compat as compat

    monkeypatch.setattr(compat, "make_image", lambda *a, **k: b"<!DOCTYPE html><p>maintenance</p>")
    _, cap = failing(ip, f"%lollms image -b openai --host {openai_server.url} -m dall-e-2 -W 256 -H 256 owl")
    assert "answered something that is not an image" in one_line(cap)


def test_interrupt_cancels_the_job_on_the_server(ip, a1111_server):
    a1111_server.step_delay = 0.02
    ip.lollms.session.use_image("a1111", host=a1111_server.url, poll_interval=0.02)

    def interrupt_when_running():
        end = time.monotonic() + 5
        while a1111_server.state.sampling_step < 3 and time.monotonic() < end:
            time.sleep(0.01)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    with capture_output() as cap, pytest.raises(KeyboardInterrupt):
        ip.run_line_magic("lollms", "image --steps 1000 an owl")
    assert "the server was asked to stop the picture" in cap.stderr
    assert a1111_server.requests_to("/sdapi/v1/interrupt")
    deadline = time.monotonic() + 5
    while not a1111_server.jobs and time.monotonic() < deadline:
        time.sleep(0.01)
    assert a1111_server.jobs[-1]["interrupted"] and a1111_server.jobs[-1]["steps_done"] < 1000
    assert "interrupted" in cap.outputs[-1].data["text/plain"]  # the progress bar is gone


def test_help(ip):
    text = run(ip, "image --help").stdout
    assert "--negative TEXT" in text and "-W PX" in text and "--save PATH_OR_DIR" in text
    assert "%lollms image PROMPT [-W 768 -H 512 ...]" in run(ip, "help").stdout


def test_a_saved_notebook_keeps_each_picture_with_its_metadata_and_no_secret(
    monkeypatch, tmp_path, a1111_server, comfyui_server, lollms_webui_server, lollms_server, openai_server
):
    """The issue's "done when": a real kernel, each image server, the .ipynb written and read back."""
    import nbclient
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    openai_server.api_key = "sk-image-secret-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", openai_server.api_key)
    monkeypatch.setenv("LOLLMS_API_KEY", LOLLMS_KEY)
    monkeypatch.setenv("LOLLMS_CLIENT_ID", WEBUI_ID)  # the kernel inherits them
    a1111_server.step_delay = comfyui_server.step_delay = 0.01
    runs = [
        ("a1111", a1111_server.url, "--steps 40"),
        ("comfyui", comfyui_server.url, "--steps 40"),
        ("lollms", lollms_webui_server.url, ""),
        ("lollms", lollms_server.url, ""),
        ("openai", openai_server.url, "-m dall-e-2"),
    ]
    cells = [new_code_cell("%load_ext lollms_magics")]
    cells += [
        new_code_cell(f'%lollms image -b {b} --host {url} {x} -W 256 -H 256 "a majestic owl"')
        for b, url, x in runs
    ]
    cells.append(new_code_cell(f"%lollms tti services -b lollms --host {lollms_webui_server.url}"))
    nb = new_notebook(cells=cells)
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    path = tmp_path / "owls.ipynb"
    nbformat.write(nb, path)
    saved = path.read_text()
    for secret in (openai_server.api_key, LOLLMS_KEY, WEBUI_ID):
        assert secret not in saved
    reread = nbformat.read(path, as_version=4)
    for cell, (binding, _, _) in zip(reread.cells[1:6], runs, strict=True):
        outputs = [o for o in cell.outputs if o.output_type in ("display_data", "execute_result")]
        assert len(outputs) == 1, cell.source  # the progress display became the picture
        mime = next(m for m in outputs[0].data if m.startswith("image/"))
        assert Image.open(io.BytesIO(base64.b64decode(outputs[0].data[mime]))).size == (256, 256)
        meta = outputs[0].metadata["lollms_magics"]
        assert meta["binding"] == binding and meta["prompt"] == "a majestic owl"
    assert "diffusers: Diffusers" in reread.cells[6].outputs[0].text


def test_a_terminal_gets_one_working_line_then_the_description(ip, a1111_server):
    ip.lollms.stream_to = "stdout"  # as terminal IPython: no rich display
    cap = run(ip, f"image -b a1111 --host {a1111_server.url} -W 64 -H 64 --seed 5 an owl")
    assert cap.stderr.count("lollms image · a1111: working…") == 1
    assert cap.outputs[-1].data["text/plain"] == "a1111: 1 image 64x64, seed 5 — an owl"
