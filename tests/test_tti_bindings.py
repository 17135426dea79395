"""The image bindings at two seams: httpx.MockTransport units, and the loopback image servers."""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from PIL import Image

from lollms_magics.core.session import Session
from lollms_magics.errors import (
    AuthenticationError,
    BadRequestError,
    BindingTimeout,
    InvalidOptionError,
    NoBackendError,
    ProtocolError,
    ServerError,
    ServerUnreachableError,
    UnknownBindingError,
    UnknownModelError,
    UnsupportedOptionWarning,
)
from lollms_magics.tti import get_image_binding, image_binding_names
from lollms_magics.tti.base import ImageRequest, UnsupportedFeatureError
from lollms_magics.tti.comfyui import default_workflow, fill_workflow, load_workflow
from tests.servers import LOLLMS_KEY
from tests.servers.images import make_jpeg, make_png

WEBUI_ID = "loopback-client-id"


def size_of(data: bytes) -> tuple[str, tuple[int, int]]:
    img = Image.open(io.BytesIO(data))
    return img.format, img.size


def closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def bindings():
    """Make image bindings that are closed after the test."""
    made = []

    def make(name, **kw):
        b = get_image_binding(name, **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


# ------------------------------------------------------------------ registry


def test_registry_and_lazy_imports():
    assert image_binding_names()[:4] == ["lollms", "openai", "a1111", "comfyui"]
    with pytest.raises(UnknownBindingError, match="no image binding named 'dalle'"):
        get_image_binding("dalle")
    code = "import sys, lollms_magics.tti; print('httpx' in sys.modules, 'PIL' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------ MockTransport units


def mock(handler):
    seen = []

    def wrapped(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    return httpx.MockTransport(wrapped), seen


def b64_item(data: bytes) -> dict:
    return {"b64_json": base64.b64encode(data).decode()}


def test_openai_checks_sizes_before_sending(bindings):
    transport, seen = mock(lambda r: httpx.Response(500))
    b = bindings("openai", host="https://api.openai.com/v1", api_key="sk-x", transport=transport)
    with pytest.raises(InvalidOptionError, match="dall-e-2 makes only 256x256, 512x512, 1024x1024 pictures"):
        b.generate_image("owl", width=800, height=600, model="dall-e-2")
    with pytest.raises(InvalidOptionError, match="dall-e-3 makes one picture per request"):
        b.generate_image("owl", n=2)
    assert seen == []


def test_openai_body_per_model_and_unsupported_options(bindings):
    transport, seen = mock(
        lambda r: httpx.Response(200, json={"created": 1, "data": [b64_item(make_png(8, 8))]})
    )
    b = bindings("openai", host="https://api.openai.com/v1", api_key="sk-x", transport=transport)
    with pytest.warns(
        UnsupportedOptionWarning, match=r"^openai cannot honour seed, steps; they are not sent$"
    ):
        data = b.generate_image("owl", seed=3, steps=10)
    assert size_of(data) == ("PNG", (8, 8))
    body = json.loads(seen[-1].content)
    assert body == {
        "prompt": "owl",
        "n": 1,
        "size": "1024x1024",
        "model": "dall-e-3",
        "response_format": "b64_json",
    }
    assert seen[-1].headers["authorization"] == "Bearer sk-x"
    b.generate_image("owl", model="gpt-image-1", width=1536, height=1024)
    assert "response_format" not in json.loads(seen[-1].content)


def test_openai_content_filter_and_not_an_image(bindings):
    refusal = {
        "error": {
            "code": "content_policy_violation",
            "message": "Your request was rejected...",
            "param": None,
            "type": "invalid_request_error",
        }
    }
    replies = [
        httpx.Response(400, json=refusal),
        httpx.Response(200, json={"data": [b64_item(b"<html>nope")]}),
    ]
    transport, _ = mock(lambda r: replies.pop(0))
    b = bindings("openai", host="https://api.openai.com/v1", api_key="sk-x", transport=transport)
    with pytest.raises(BadRequestError) as info:
        b.generate_image("a forbidden thing")
    assert str(info.value) == (
        "openai at https://api.openai.com/v1 refused the prompt: its safety system rejected it "
        "(content_policy_violation); rephrase the prompt"
    )
    with pytest.raises(ProtocolError, match=r"answered something that is not an image \(10 bytes"):
        b.generate_image("owl")


def webui_transport(handler):
    """lollms-webui as the detection sees it: no /v1/models, a /list_models list."""

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(404, json={"detail": "Not Found"})
        if request.url.path == "/list_models":
            return httpx.Response(200, json=["m"])
        return handler(request)

    return mock(route)


def test_lollms_webui_client_id_is_needed_and_never_shown(bindings):
    transport, seen = webui_transport(
        lambda r: httpx.Response(400, json={"detail": "Not accessible without id"})
    )
    b = bindings("lollms", host="http://webui.test:9600", transport=transport)
    with pytest.raises(AuthenticationError, match="needs a client_id to list image services"):
        b.list_services()
    assert not any(r.url.path == "/list_tti_services" for r in seen)  # refused before sending
    b = bindings("lollms", host="http://webui.test:9600", client_id="secret-session-42", transport=transport)
    with pytest.raises(AuthenticationError) as info:
        b.get_settings()
    assert "does not know this client_id (400: Not accessible without id)" in str(info.value)
    assert "secret-session-42" not in str(info.value) + repr(b)
    assert json.loads(seen[-1].content) == {"client_id": "secret-session-42"}


def test_lollms_webui_generate_image_sends_only_its_fields(bindings):
    jpeg = make_jpeg(64, 32)
    transport, seen = webui_transport(
        lambda r: httpx.Response(200, json={"image": base64.b64encode(jpeg).decode()})
    )
    b = bindings("lollms", host="http://webui.test:9600", transport=transport)
    with pytest.warns(UnsupportedOptionWarning, match="lollms cannot honour cfg_scale"):
        images = b.generate_image("owl", negative_prompt="blur", width=64, height=32, cfg_scale=5, n=2)
    assert [size_of(i) for i in images] == [("JPEG", (64, 32))] * 2
    sent = [json.loads(r.content) for r in seen if r.url.path == "/generate_image"]
    assert sent == [{"prompt": "owl", "negative_prompt": "blur", "width": 64, "height": 32}] * 2


def test_a1111_skips_the_grid_and_reads_the_seed(bindings):
    info = {"seed": 11, "all_seeds": [11, 12], "index_of_first_image": 1, "steps": 9, "cfg_scale": 4.0}
    answer = {
        "images": [base64.b64encode(make_png(16, 8)).decode()]
        + [base64.b64encode(make_png(8, 8, s)).decode() for s in (11, 12)],
        "parameters": {},
        "info": json.dumps(info),
    }

    def route(request):
        if request.url.path == "/sdapi/v1/txt2img":
            return httpx.Response(200, json=answer)
        return httpx.Response(200, json={"progress": 0, "state": {"job_count": 0}})

    transport, seen = mock(route)
    b = bindings("a1111", host="http://sd.test", transport=transport, poll_interval=0.01)
    result = b.create_images("owl", width=8, height=8, n=2, steps=9)
    assert result.sizes == [(8, 8), (8, 8)] and result.seed == 11 and result.seeds == [11, 12]
    body = json.loads(next(r for r in seen if r.url.path == "/sdapi/v1/txt2img").content)
    assert (body["seed"], body["batch_size"], body["steps"]) == (-1, 2, 9)
    assert "cfg_scale" not in body  # left to the web UI when not asked


def test_comfyui_workflow_filling():
    graph = default_workflow()
    request = ImageRequest("an owl", "blurry", 640, 384, None, 12, 5.5, 2, None)
    filled = fill_workflow(graph, request, 77, "sdxl.safetensors")
    assert filled["6"]["inputs"]["text"] == "an owl" and filled["7"]["inputs"]["text"] == "blurry"
    assert filled["5"]["inputs"] == {"width": 640, "height": 384, "batch_size": 2}
    assert (filled["3"]["inputs"]["seed"], filled["3"]["inputs"]["steps"], filled["3"]["inputs"]["cfg"]) == (
        77,
        12,
        5.5,
    )
    assert filled["4"]["inputs"]["ckpt_name"] == "sdxl.safetensors"
    assert graph["6"]["inputs"]["text"] == "{prompt}"  # the template is untouched
    own = {k: dict(v, inputs=dict(v["inputs"])) for k, v in graph.items()}
    own["6"]["inputs"]["text"] = "a cat"  # no placeholder: the sampler's positive link is followed
    filled = fill_workflow(own, request, 1, None)
    assert filled["6"]["inputs"]["text"] == "an owl"
    with pytest.raises(InvalidOptionError, match="UI format; export it with 'Save \\(API Format\\)'"):
        load_workflow({"nodes": [], "links": []})


# ------------------------------------------------------------------ loopback


def test_each_server_makes_pictures_of_the_size(
    bindings, a1111_server, comfyui_server, lollms_webui_server, lollms_server, openai_server
):
    cases = [
        (bindings("a1111", host=a1111_server.url), {}, "PNG"),
        (bindings("comfyui", host=comfyui_server.url), {}, "PNG"),
        (bindings("lollms", host=lollms_webui_server.url), {}, "JPEG"),
        (bindings("lollms", host=lollms_server.url, api_key=LOLLMS_KEY), {}, "PNG"),
        (bindings("openai", host=openai_server.url, model="dall-e-2"), {"width": 512, "height": 512}, "PNG"),
    ]
    for b, size, fmt in cases:
        want = size or {"width": 768, "height": 512}
        result = b.create_images("a majestic owl", **want)
        assert result.formats == [fmt] and result.sizes == [(want["width"], want["height"])], b.name
        assert result.binding == b.name


def test_a1111_progress_advances_and_the_seed_is_the_one_used(bindings, a1111_server):
    a1111_server.step_delay = 0.01
    b = bindings("a1111", host=a1111_server.url, poll_interval=0.02)
    seen = []
    result = b.create_images("owl", steps=40, progress=seen.append)
    fractions = [f for f in seen if f is not None]
    assert seen[0] is None and seen[-1] == 1.0
    assert len(fractions) >= 4 and fractions == sorted(fractions)
    sent = a1111_server.requests_to("/sdapi/v1/txt2img")[0].json
    assert sent["seed"] == -1 and result.seed == a1111_server.jobs[-1]["seed"] != -1


def test_a1111_interrupt_cancels_the_job(bindings, a1111_server):
    a1111_server.step_delay = 0.02
    b = bindings("a1111", host=a1111_server.url, poll_interval=0.02)

    def progress(fraction):
        if fraction is not None and fraction > 0.05:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        b.create_images("owl", steps=500, progress=progress)
    assert a1111_server.requests_to("/sdapi/v1/interrupt")
    assert wait_for(lambda: a1111_server.jobs)
    job = a1111_server.jobs[-1]
    assert job["interrupted"] is True and job["steps_done"] < 500


def wait_for(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_comfyui_progress_comes_from_its_event_feed(bindings, comfyui_server):
    comfyui_server.step_delay = 0.01
    b = bindings("comfyui", host=comfyui_server.url, poll_interval=0.02)
    seen = []
    b.create_images("owl", steps=50, progress=seen.append)
    fractions = [f for f in seen if f is not None]
    assert len(fractions) >= 4 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(0 < f < 1 for f in fractions)
    comfyui_server.ws_enabled = False  # no feed: the picture still comes, with a waiting indicator
    seen.clear()
    result = b.create_images("owl", steps=20, width=64, height=64, progress=seen.append)
    assert result.sizes == [(64, 64)] and set(seen[:-1]) == {None} and seen[-1] == 1.0


def test_comfyui_interrupt_cancels_the_queued_prompt(bindings, comfyui_server):
    comfyui_server.step_delay = 0.02
    b = bindings("comfyui", host=comfyui_server.url, poll_interval=0.02)
    calls = []

    def progress(fraction):
        calls.append(fraction)
        if len(calls) == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        b.create_images("owl", steps=500, progress=progress)
    sent = comfyui_server.requests_to("/interrupt")[-1].json
    assert wait_for(lambda: sent["prompt_id"] in comfyui_server.interrupted_prompts)
    assert comfyui_server.progress[sent["prompt_id"]][0] < 500


def test_a1111_faults(bindings, a1111_server):
    a1111_server.api_enabled = False
    b = bindings("a1111", host=a1111_server.url)
    with pytest.raises(
        ProtocolError, match=r"has no API \(/sdapi/v1/txt2img answers 404\): start the web UI with --api"
    ):
        b.generate_image("owl")
    a1111_server.api_enabled = True
    with pytest.raises(UnknownModelError, match="has no checkpoint 'ghost'; available: v1-5-pruned"):
        b.generate_image("owl", model="ghost")
    assert not a1111_server.requests_to("/sdapi/v1/txt2img")[1:]  # only the no-API attempt went out
    with pytest.raises(BadRequestError, match=r"refused the request \(404: Sampler not found\)"):
        b.generate_image("owl", sampler_name="nope")
    a1111_server.credentials = ("me", "pw")
    with pytest.raises(AuthenticationError, match="Not authenticated"):
        b.generate_image("owl")
    assert (
        size_of(bindings("a1111", host=a1111_server.url, api_key="me:pw").generate_image("owl"))[0] == "PNG"
    )
    a1111_server.credentials = None
    a1111_server.step_delay = 0.05
    slow = bindings("a1111", host=a1111_server.url, read_timeout=0.3)
    with pytest.raises(BindingTimeout, match=re.escape("did not finish within 0.3 s")):
        slow.generate_image("owl", steps=100)


def test_comfyui_faults(bindings, comfyui_server):
    b = bindings("comfyui", host=comfyui_server.url)
    with pytest.raises(UnknownModelError, match=re.escape("has no checkpoint 'ghost.safetensors'")):
        b.generate_image("owl", model="ghost.safetensors")
    comfyui_server.execution_error = "CUDA out of memory"
    with pytest.raises(ServerError, match=r"failed in KSampler \(node 3\): CUDA out of memory"):
        b.generate_image("owl", steps=2)
    comfyui_server.execution_error = None
    comfyui_server.step_delay = 0.05
    slow = bindings("comfyui", host=comfyui_server.url, read_timeout=0.3, poll_interval=0.02)
    with pytest.raises(
        BindingTimeout, match=re.escape("did not finish the picture within 0.3 s; the job was cancelled")
    ):
        slow.generate_image("owl", steps=200)
    assert wait_for(lambda: comfyui_server.interrupted_prompts)


def test_lollms_faults(bindings, lollms_webui_server, lollms_server):
    stale = bindings("lollms", host=lollms_webui_server.url, client_id="gone")
    with pytest.raises(AuthenticationError, match="does not know this client_id"):
        stale.list_services()
    live = bindings("lollms", host=lollms_webui_server.url, client_id=WEBUI_ID)
    assert [s["name"] for s in live.list_services()] == ["diffusers", "dall-e"]
    assert live.set_settings(steps=8) is True
    assert lollms_webui_server.tti_settings[1]["value"] == 8
    assert [m.name for m in live.list_models()] == [
        "stabilityai/sdxl-turbo",
        "runwayml/stable-diffusion-v1-5",
    ]
    lollms_webui_server.tti_active = False
    with pytest.raises(ServerError, match="is an image service chosen and working in the LoLLMs settings"):
        live.generate_image("owl")
    new = bindings("lollms", host=lollms_server.url, api_key=LOLLMS_KEY)
    with pytest.raises(
        UnknownModelError, match="has no image model 'diffusers/ghost'; available: diffusers/sdxl"
    ):
        new.generate_image("owl", model="diffusers/ghost")
    with pytest.raises(UnsupportedFeatureError, match="lollms cannot show image settings"):
        new.get_settings()
    assert [s["name"] for s in new.list_services()] == ["diffusers", "dalle"]


def test_content_filter_and_unreachable(bindings, openai_server):
    b = bindings("openai", host=openai_server.url, model="dall-e-3")
    with pytest.raises(BadRequestError, match="its safety system rejected it"):
        b.generate_image("something forbidden")
    gone = bindings("a1111", host=closed_port_url(), max_retries=0)
    with pytest.raises(ServerUnreachableError, match=re.escape("cannot reach a1111 at http://127.0.0.1:")):
        gone.generate_image("owl")


def test_session_image_and_the_automatic_choice(monkeypatch, a1111_server, comfyui_server):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LOLLMS_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOLLMS_HOST", closed_port_url())
    monkeypatch.setenv("A1111_HOST", a1111_server.url)
    monkeypatch.setenv("COMFYUI_HOST", comfyui_server.url)
    session = Session(auto_timeout=0.5)
    try:
        result = session.image("a {animal}", namespace={"animal": "fox"}, width=64, height=64)
        assert result.binding == "a1111" and result.sizes == [(64, 64)]
        assert a1111_server.requests_to("/sdapi/v1/txt2img")[-1].json["prompt"] == "a fox"
        assert session.image_target().reason.startswith("chosen automatically: AUTOMATIC1111 answered at")
        session.use_image("comfyui")
        assert session.image("owl", width=64, height=64).binding == "comfyui"
    finally:
        session.close()
    monkeypatch.setenv("A1111_HOST", closed_port_url())
    monkeypatch.setenv("COMFYUI_HOST", closed_port_url())
    started = time.monotonic()
    with pytest.raises(NoBackendError, match="no image server found"):
        Session(auto_timeout=0.5).image("owl")
    assert time.monotonic() - started < 3  # the probes ran at the same time


def test_a1111_without_api_is_named_by_the_automatic_choice(monkeypatch, a1111_server):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOLLMS_HOST", closed_port_url())
    monkeypatch.setenv("COMFYUI_HOST", closed_port_url())
    monkeypatch.setenv("A1111_HOST", a1111_server.url)
    a1111_server.api_enabled = False
    with pytest.raises(NoBackendError, match="without its API: restart it with --api"):
        Session(auto_timeout=0.5).image("owl")


def test_job_threads_end_with_their_job(bindings, a1111_server):
    b = bindings("a1111", host=a1111_server.url, poll_interval=0.01)
    for _ in range(3):
        b.generate_image("owl", width=32, height=32, steps=2)
    assert wait_for(lambda: not [t for t in threading.enumerate() if t.name == "a1111-image-job"])


def test_slow_openai_and_lollms_time_out(bindings, openai_server, lollms_webui_server):
    openai_server.image_delay = 2.0
    b = bindings("openai", host=openai_server.url, model="dall-e-2", read_timeout=0.3, max_retries=0)
    started = time.monotonic()
    with pytest.raises(BindingTimeout, match="did not answer within the timeout; raise it"):
        b.generate_image("owl", width=256, height=256)
    lollms_webui_server.tti_delay = 2.0
    slow = bindings("lollms", host=lollms_webui_server.url, read_timeout=0.3, max_retries=0)
    with pytest.raises(BindingTimeout):
        slow.generate_image("owl")
    assert time.monotonic() - started < 2.0  # neither waited for the picture
