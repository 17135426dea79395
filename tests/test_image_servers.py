"""The image loopback servers behave like the real ones (see each server's docstring for its sources).

The OpenAI-flavoured image routes are driven with the official ``openai`` SDK;
A1111, ComfyUI and lollms-webui (no maintained Python client) with raw httpx,
asserting the exact shapes their source code produces.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time

import httpx
import openai
import pytest
from PIL import Image

from tests.servers import LOLLMS_KEY

T = httpx.Timeout(10.0)


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def wait_until(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


# ------------------------------------------------------------------ A1111


def test_a1111_txt2img_size_seed_and_info(a1111_server):
    r = httpx.post(
        a1111_server.url + "/sdapi/v1/txt2img",
        json={"prompt": "an owl", "width": 768, "height": 512, "steps": 5, "seed": -1},
        timeout=T,
    )
    assert r.status_code == 200
    body = r.json()
    img = decode(body["images"][0])
    assert (img.format, img.size) == ("PNG", (768, 512))
    info = json.loads(body["info"])  # a JSON string inside the JSON
    assert info["seed"] != -1 and info["all_seeds"] == [info["seed"]]
    assert body["parameters"]["seed"] == -1  # the request as given
    assert info["steps"] == 5 and info["index_of_first_image"] == 0


def test_a1111_batch_puts_the_grid_first_and_sizes_round_down_to_8(a1111_server):
    r = httpx.post(
        a1111_server.url + "/sdapi/v1/txt2img",
        json={"prompt": "x", "width": 500, "height": 300, "steps": 2, "batch_size": 2, "seed": 7},
        timeout=T,
    )
    body = r.json()
    sizes = [decode(b).size for b in body["images"]]
    assert sizes == [(992, 296), (496, 296), (496, 296)]
    info = json.loads(body["info"])
    assert info["index_of_first_image"] == 1 and info["all_seeds"] == [7, 8]


def test_a1111_samples_format_jpg(a1111_server):
    a1111_server.options["samples_format"] = "jpg"
    r = httpx.post(a1111_server.url + "/sdapi/v1/txt2img", json={"prompt": "x", "steps": 1}, timeout=T)
    img = decode(r.json()["images"][0])
    assert (img.format, img.size) == ("JPEG", (512, 512))


def test_a1111_progress_advances_then_idles(a1111_server):
    a1111_server.step_delay = 0.02
    done = {}

    def run():
        done["r"] = httpx.post(
            a1111_server.url + "/sdapi/v1/txt2img", json={"prompt": "x", "steps": 40}, timeout=T
        )

    t = threading.Thread(target=run)
    t.start()
    seen = []
    while t.is_alive():
        p = httpx.get(a1111_server.url + "/sdapi/v1/progress", timeout=T).json()
        seen.append(p["progress"])
        time.sleep(0.05)
    t.join()
    running = [v for v in seen if v > 0]
    assert len(running) >= 3 and running == sorted(running) and running[-1] > running[0]
    idle = httpx.get(a1111_server.url + "/sdapi/v1/progress", timeout=T).json()
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0
    assert done["r"].status_code == 200


def test_a1111_interrupt_stops_the_job_and_still_answers(a1111_server):
    a1111_server.step_delay = 0.02
    out = {}
    t = threading.Thread(
        target=lambda: out.setdefault(
            "r",
            httpx.post(a1111_server.url + "/sdapi/v1/txt2img", json={"prompt": "x", "steps": 200}, timeout=T),
        )
    )
    t.start()
    assert wait_until(lambda: a1111_server.state.sampling_step >= 3)
    assert httpx.post(a1111_server.url + "/sdapi/v1/interrupt", timeout=T).json() == {}
    t.join(5)
    job = a1111_server.jobs[-1]
    assert job["interrupted"] is True and 3 <= job["steps_done"] < 200
    assert out["r"].status_code == 200 and len(out["r"].json()["images"]) == 1


def test_a1111_without_api_flag_is_404_but_the_ui_answers(a1111_server):
    a1111_server.api_enabled = False
    r = httpx.get(a1111_server.url + "/sdapi/v1/sd-models", timeout=T)
    assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
    assert httpx.get(a1111_server.url + "/", timeout=T).status_code == 200


def test_a1111_errors_have_the_custom_shape(a1111_server):
    r = httpx.post(
        a1111_server.url + "/sdapi/v1/txt2img", json={"prompt": "x", "sampler_name": "nope"}, timeout=T
    )
    assert r.status_code == 404
    assert r.json() == {
        "error": "HTTPException",
        "detail": "Sampler not found",
        "body": "",
        "errors": "404: Sampler not found",
    }
    r = httpx.post(a1111_server.url + "/sdapi/v1/txt2img", json={"prompt": "x", "width": "wide"}, timeout=T)
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {"loc": ["body", "width"], "msg": "value is not a valid integer", "type": "type_error.integer"}
    ]


def test_a1111_options_switch_checkpoint_or_refuse(a1111_server):
    url = a1111_server.url + "/sdapi/v1/options"
    r = httpx.post(url, json={"sd_model_checkpoint": "missing"}, timeout=T)
    assert r.status_code == 500
    assert r.json() == {
        "error": "RuntimeError",
        "detail": "",
        "body": "",
        "errors": "model 'missing' not found",
    }
    r = httpx.post(url, json={"sd_model_checkpoint": "sd_xl_base_1.0"}, timeout=T)
    assert (r.status_code, r.json()) == (200, None)
    assert (
        httpx.get(url, timeout=T).json()["sd_model_checkpoint"] == "sd_xl_base_1.0.safetensors [31e35c80fc]"
    )
    titles = [m["title"] for m in httpx.get(a1111_server.url + "/sdapi/v1/sd-models", timeout=T).json()]
    assert titles == a1111_server.models


def test_a1111_unknown_override_checkpoint_falls_back(a1111_server):
    body = {"prompt": "x", "steps": 1, "override_settings": {"sd_model_checkpoint": "ghost"}}
    r = httpx.post(a1111_server.url + "/sdapi/v1/txt2img", json=body, timeout=T)
    assert r.status_code == 200 and a1111_server.fallbacks == ["ghost"]
    assert json.loads(r.json()["info"])["sd_model_name"] == "v1-5-pruned-emaonly.safetensors"


def test_a1111_basic_auth(a1111_server):
    a1111_server.credentials = ("me", "secret")
    url = a1111_server.url + "/sdapi/v1/sd-models"
    r = httpx.get(url, timeout=T)
    assert r.status_code == 401 and r.json()["detail"] == "Not authenticated"
    assert r.headers["www-authenticate"] == "Basic"
    assert (
        httpx.get(url, auth=("me", "wrong"), timeout=T).json()["detail"] == "Incorrect username or password"
    )
    assert httpx.get(url, auth=("me", "secret"), timeout=T).status_code == 200


# ------------------------------------------------------------------ ComfyUI


def workflow(ckpt="v1-5-pruned-emaonly.safetensors", width=640, height=384, steps=4, batch=1):
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "an owl", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": width, "height": height, "batch_size": batch},
        },
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["4", 0],
                "seed": 42,
                "steps": steps,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
                "denoise": 1.0,
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "owl", "images": ["8", 0]}},
    }


def queue(srv, graph, **extra):
    return httpx.post(srv.url + "/prompt", json={"prompt": graph, "client_id": "c1", **extra}, timeout=T)


def test_comfyui_queue_history_view(comfyui_server):
    comfyui_server.step_delay = 0.03
    r = queue(comfyui_server, workflow(steps=60, batch=2))
    assert r.status_code == 200
    pid = r.json()["prompt_id"]
    assert r.json()["node_errors"] == {}
    assert wait_until(lambda: httpx.get(comfyui_server.url + "/queue", timeout=T).json()["queue_running"])
    running = httpx.get(comfyui_server.url + "/queue", timeout=T).json()["queue_running"][0]
    assert running[1] == pid and running[3] == {"client_id": "c1"}
    assert httpx.get(comfyui_server.url + f"/history/{pid}", timeout=T).json() == {}  # empty until done
    assert wait_until(lambda: httpx.get(comfyui_server.url + f"/history/{pid}", timeout=T).json())
    entry = httpx.get(comfyui_server.url + f"/api/history/{pid}", timeout=T).json()[pid]
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert [m[0] for m in entry["status"]["messages"]][-1] == "execution_success"
    images = entry["outputs"]["9"]["images"]
    assert [i["type"] for i in images] == ["output", "output"]
    for ref in images:
        got = httpx.get(comfyui_server.url + "/view", params=ref, timeout=T)
        assert got.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(got.content)).size == (640, 384)


def test_comfyui_validation_errors(comfyui_server):
    r = queue(comfyui_server, workflow(ckpt="missing.safetensors"))
    assert r.status_code == 400
    body = r.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    err = body["node_errors"]["4"]
    assert err["class_type"] == "CheckpointLoaderSimple" and err["dependent_outputs"] == ["9"]
    assert err["errors"][0]["type"] == "value_not_in_list"
    assert err["errors"][0]["details"].startswith("ckpt_name: 'missing.safetensors' not in [")
    graph = workflow()
    graph["5"]["inputs"]["width"] = 8
    e = queue(comfyui_server, graph).json()["node_errors"]["5"]["errors"][0]
    assert (e["type"], e["message"]) == ("value_smaller_than_min", "Value 8 smaller than min of 16")
    graph = workflow()
    del graph["6"]["class_type"]
    r = queue(comfyui_server, graph)
    assert r.json()["error"] == {
        "type": "invalid_prompt",
        "message": "Cannot execute because a node is missing the class_type property.",
        "details": "Node ID '#6'",
        "extra_info": {},
    }
    r = httpx.post(comfyui_server.url + "/prompt", json={"client_id": "c"}, timeout=T)
    assert r.status_code == 400 and r.json()["error"]["type"] == "no_prompt"


def test_comfyui_view_refuses_traversal(comfyui_server):
    view = comfyui_server.url + "/view"
    assert httpx.get(view, params={"filename": "../secret.png"}, timeout=T).status_code == 400
    assert httpx.get(view, params={"filename": "/etc/passwd"}, timeout=T).status_code == 400
    assert httpx.get(view, params={"filename": "a.png", "subfolder": "../.."}, timeout=T).status_code == 403
    assert httpx.get(view, params={"filename": "nothere.png"}, timeout=T).status_code == 404


def test_comfyui_interrupt_stops_only_the_named_running_prompt(comfyui_server):
    comfyui_server.step_delay = 0.02
    pid = queue(comfyui_server, workflow(steps=300)).json()["prompt_id"]
    assert wait_until(lambda: comfyui_server.progress.get(pid, (0, 0))[0] >= 3)
    httpx.post(comfyui_server.url + "/interrupt", json={"prompt_id": "someone-else"}, timeout=T)
    time.sleep(0.1)
    assert comfyui_server.interrupted_prompts == []
    httpx.post(comfyui_server.url + "/interrupt", json={"prompt_id": pid}, timeout=T)
    assert wait_until(lambda: httpx.get(comfyui_server.url + f"/history/{pid}", timeout=T).json())
    entry = httpx.get(comfyui_server.url + f"/history/{pid}", timeout=T).json()[pid]
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert comfyui_server.progress[pid][0] < 300 and entry["outputs"] == {}


def test_comfyui_queue_delete_and_execution_error(comfyui_server):
    comfyui_server.step_delay = 0.02
    first = queue(comfyui_server, workflow(steps=100)).json()["prompt_id"]
    second = queue(comfyui_server, workflow(steps=1)).json()["prompt_id"]
    pending = httpx.get(comfyui_server.url + "/queue", timeout=T).json()["queue_pending"]
    assert second in [p[1] for p in pending]
    httpx.post(comfyui_server.url + "/queue", json={"delete": [second]}, timeout=T)
    assert httpx.get(comfyui_server.url + "/queue", timeout=T).json()["queue_pending"] == []
    httpx.post(comfyui_server.url + "/interrupt", timeout=T)  # global interrupt
    assert wait_until(lambda: first in comfyui_server.history)
    comfyui_server.step_delay = 0
    comfyui_server.execution_error = "CUDA out of memory"
    pid = queue(comfyui_server, workflow()).json()["prompt_id"]
    assert wait_until(lambda: pid in comfyui_server.history)
    last = comfyui_server.history[pid]["status"]["messages"][-1]
    assert last[0] == "execution_error" and last[1]["exception_message"] == "CUDA out of memory"
    assert last[1]["node_type"] == "KSampler"


def test_comfyui_models_and_origin_check(comfyui_server):
    info = httpx.get(comfyui_server.url + "/object_info/CheckpointLoaderSimple", timeout=T).json()
    assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == comfyui_server.models
    assert httpx.get(comfyui_server.url + "/models/checkpoints", timeout=T).json() == comfyui_server.models
    r = httpx.post(
        comfyui_server.url + "/prompt",
        json={"prompt": workflow()},
        headers={"Origin": "http://evil.example"},
        timeout=T,
    )
    assert r.status_code == 403


# ------------------------------------------------------------- lollms-webui


def test_webui_tti_needs_a_live_client_id(lollms_webui_server):
    url = lollms_webui_server.url
    r = httpx.post(url + "/list_tti_services", json={"client_id": "stale"}, timeout=T)
    assert (r.status_code, r.json()) == (400, {"detail": "Not accessible without id"})
    r = httpx.post(url + "/get_active_tti_settings", json={}, timeout=T)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "client_id"]
    r = httpx.post(url + "/set_active_tti_settings", json={"settings": []}, timeout=T)
    assert r.status_code == 500  # data["client_id"] raised KeyError
    ok = {"client_id": "loopback-client-id"}
    services = httpx.post(url + "/list_tti_services", json=ok, timeout=T).json()
    assert [s["name"] for s in services] == ["diffusers", "dall-e"]
    settings = httpx.post(url + "/get_active_tti_settings", json=ok, timeout=T).json()
    settings[1]["value"] = 8
    r = httpx.post(url + "/set_active_tti_settings", json={**ok, "settings": settings}, timeout=T)
    assert r.json() == {"status": True}
    assert httpx.post(url + "/get_active_tti_settings", json=ok, timeout=T).json()[1]["value"] == 8


def test_webui_generate_image_is_jpeg_of_the_size(lollms_webui_server):
    r = httpx.post(
        lollms_webui_server.url + "/generate_image",
        json={"prompt": "an owl", "negative_prompt": "", "width": 640, "height": 448},
        timeout=T,
    )
    img = decode(r.json()["image"])
    assert (img.format, img.size) == ("JPEG", (640, 448))
    lollms_webui_server.tti_active = False
    r = httpx.post(lollms_webui_server.url + "/generate_image", json={"prompt": "x"}, timeout=T)
    assert (r.status_code, r.json()) == (500, {"detail": "500: Image generation failed"})


# ------------------------------------------------- OpenAI flavour, official SDK


def sdk(srv, key="sk-test"):
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0, timeout=5.0)


def test_openai_sdk_b64_json_at_the_size(openai_server):
    r = sdk(openai_server).images.generate(
        model="dall-e-2", prompt="an owl", size="512x512", response_format="b64_json", n=2
    )
    imgs = [decode(d.b64_json) for d in r.data]
    assert [(i.format, i.size) for i in imgs] == [("PNG", (512, 512))] * 2
    r = sdk(openai_server).images.generate(model="dall-e-3", prompt="an owl", size="1792x1024")
    assert Image.open(io.BytesIO(httpx.get(r.data[0].url, timeout=T).content)).size == (1792, 1024)


def test_openai_sdk_refusals(openai_server):
    client = sdk(openai_server)
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="dall-e-3", prompt="something forbidden", response_format="b64_json")
    assert e.value.code == "content_policy_violation"
    assert "rejected as a result of our safety system" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="dall-e-2", prompt="x", size="1792x1024")
    assert "'1792x1024' is not one of ['256x256', '512x512', '1024x1024']" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="gpt-image-1", prompt="x", response_format="b64_json")
    assert e.value.code == "unknown_parameter" and e.value.param == "response_format"
    r = client.images.generate(model="gpt-image-1", prompt="x", size="1536x1024")
    assert decode(r.data[0].b64_json).size == (1536, 1024)  # gpt-image always answers base64


def test_lollms_server_images_and_tti_models(lollms_server):
    client = sdk(lollms_server, LOLLMS_KEY)
    r = client.images.generate(
        model="diffusers/sdxl-turbo", prompt="an owl", size="768x512", response_format="b64_json"
    )
    assert decode(r.data[0].b64_json).size == (768, 512)
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(model="sdxl", prompt="x", response_format="b64_json")
    assert e.value.body == {"detail": "Invalid model name. Must be in 'tti_binding_alias/model_name' format."}
    listed = httpx.get(
        lollms_server.url + "/lollms/v1/tti/models",
        headers={"Authorization": f"Bearer {LOLLMS_KEY}"},
        timeout=T,
    ).json()
    assert [m["id"] for m in listed["data"]] == list(lollms_server.tti_models)
    assert listed["binding_type"] == "tti" and listed["total"] == 2
    assert httpx.get(lollms_server.url + "/lollms/v1/tti/models", timeout=T).status_code == 401
