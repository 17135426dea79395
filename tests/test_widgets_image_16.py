"""The image panel as a user finds it (issue 16), driven in the kernel against loopback image servers.

Stop drops the picture being made (A1111, ComfyUI), the server's settings
come as choices and only those a user changes, and a picture shows once.
"""

from __future__ import annotations

import base64
import json
import time

import ipywidgets
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from lollms_magics import panels
from lollms_magics.core.session import Session

A1111_TITLES = ["v1-5-pruned-emaonly.safetensors [6ce0161689]", "sd_xl_base_1.0.safetensors [31e35c80fc]"]


@pytest.fixture
def session(monkeypatch):
    for name in ("LOLLMS_CLIENT_ID", "OPENAI_API_KEY", "LOLLMS_MAGICS_BINDING", "A1111_API_AUTH"):
        monkeypatch.delenv(name, raising=False)
    InteractiveShell.instance()
    s = Session()
    yield s
    s.close_images()
    s.close()


def wait_for(condition, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False


def generate(panel):
    with capture_output() as cap:
        panel.generate.click()
        assert panel.wait(30)
    return cap


def pictures(outputs):
    return [o for o in outputs if any(k.startswith("image/") for k in o.data)]


def load_settings(panel):
    panel.load.click()
    assert panel.wait(15)
    assert panel.form is not None, panel.status.value
    return panel.form


def apply_settings(panel):
    with capture_output() as cap:
        panel.apply_button.click()
        assert panel.wait(15)
    return cap


def stop_while_sampling(panel):
    """Generate, wait until the server samples, click Stop twice; the seconds the panel took to stop."""
    with capture_output() as cap:
        panel.generate.click()
        assert wait_for(lambda: panel.progress.value > 0), panel.status.value
        assert not panel.stop.disabled  # offered while the picture is made
        clicked = time.monotonic()
        panel.stop.click()
        panel.stop.click()  # a second click during the stop
        assert panel.wait(10)
        took = time.monotonic() - clicked
    assert pictures(cap.outputs) == []  # nothing shown for a dropped picture
    return took


# -- Stop -----------------------------------------------------------------------------------------


def test_stop_interrupts_the_a1111_job_while_it_samples(session, a1111_server):
    a1111_server.step_delay = 0.05  # 200 steps: ten seconds
    session.use_image("a1111", host=a1111_server.url)
    panel = panels.image(session)
    assert panel.stop.disabled  # nothing to stop yet
    panel.prompt.value, panel.steps.value = "a slow owl", 200
    took = stop_while_sampling(panel)
    assert took < 3.0
    assert "stopped" in panel.status.value
    assert len(a1111_server.requests_to("/sdapi/v1/interrupt")) == 1  # the second click did nothing more
    assert wait_for(lambda: a1111_server.jobs)
    job = a1111_server.jobs[-1]
    assert job["interrupted"] is True and job["steps_done"] < 200
    assert panel.stop.disabled and not panel.generate.disabled
    assert panel.result is None
    a1111_server.step_delay, panel.steps.value = 0.0, 5  # the next picture comes as usual
    cap = generate(panel)
    assert len(pictures(cap.outputs)) == 1 and "1 picture(s)" in panel.status.value


def test_stop_interrupts_and_dequeues_the_comfyui_prompt(session, comfyui_server):
    comfyui_server.step_delay = 0.05
    session.use_image("comfyui", host=comfyui_server.url)
    panel = panels.image(session)
    panel.prompt.value, panel.steps.value, panel.width_box.value, panel.height_box.value = "owl", 200, 64, 64
    took = stop_while_sampling(panel)
    assert took < 3.0
    assert "stopped" in panel.status.value
    [interrupt] = comfyui_server.requests_to("/interrupt")
    prompt_id = interrupt.json["prompt_id"]
    assert wait_for(lambda: prompt_id in comfyui_server.interrupted_prompts)
    assert comfyui_server.progress[prompt_id][0] < 200
    assert {"delete": [prompt_id]} in [r.json for r in comfyui_server.requests_to("/queue")]


def test_stop_is_not_offered_where_the_server_cannot_interrupt(session, openai_server):
    session.use_image("openai", host=openai_server.url)
    panel = panels.image(session)
    panel.prompt.value = "a cat"
    seen = []
    panel.stop.observe(lambda change: seen.append(change["new"]), names="disabled")
    generate(panel)
    assert panel.stop.disabled and False not in seen
    assert panel.result is not None


# -- the server's settings --------------------------------------------------------------------------


def test_a1111_settings_offer_its_checkpoints_and_samplers_and_hide_its_internals(session, a1111_server):
    a1111_server.options.update({  # as a real web UI answers, among some 400 others
        "sd_checkpoint_hash": "6ce0161689", "outdir_samples": "outputs/txt2img-images",
        "samples_filename_pattern": "[seed]", "sd_checkpoints_limit": 1})
    session.use_image("a1111", host=a1111_server.url)
    panel = panels.image(session)
    form = load_settings(panel)
    internals = ("sd_checkpoint_hash", "outdir_samples", "samples_filename_pattern", "sd_checkpoints_limit")
    assert [name for name in internals if name in form.controls] == []
    checkpoint = form.controls["sd_model_checkpoint"]
    assert isinstance(checkpoint, ipywidgets.Dropdown)
    assert list(checkpoint.options) == A1111_TITLES and checkpoint.value == A1111_TITLES[0]
    sampler = form.controls["sampler_name"]
    assert isinstance(sampler, ipywidgets.Dropdown)
    assert [label for label, _ in sampler.options] == [
        "(the server's default)", "Euler a", "Euler", "DPM++ 2M", "DDIM"]
    assert sampler.value == ""  # nothing chosen: the web UI's own
    assert form.changes() == {}  # loading changes nothing
    checkpoint.value, sampler.value = A1111_TITLES[1], "DPM++ 2M"
    cap = apply_settings(panel)
    posted = [r.json for r in a1111_server.requests_to("/sdapi/v1/options") if r.method == "POST"]
    assert posted == [{"sd_model_checkpoint": A1111_TITLES[1]}]  # the sampler is no server option
    assert a1111_server.options["sd_model_checkpoint"] == A1111_TITLES[1]
    assert "sampler_name=DPM++ 2M" in cap.outputs[-1].data["text/markdown"]
    panel.prompt.value, panel.steps.value = "an owl", 3
    generate(panel)
    sent = a1111_server.requests_to("/sdapi/v1/txt2img")[-1].json
    assert sent["sampler_name"] == "DPM++ 2M"  # sent with each picture


def test_comfyui_settings_offer_what_object_info_lists(session, comfyui_server):
    session.use_image("comfyui", host=comfyui_server.url)
    panel = panels.image(session)
    form = load_settings(panel)
    assert "seed" not in form.controls and "workflow" not in form.controls
    checkpoint, sampler = form.controls["ckpt_name"], form.controls["sampler_name"]
    assert isinstance(checkpoint, ipywidgets.Dropdown) and isinstance(sampler, ipywidgets.Dropdown)
    assert set(checkpoint.options) >= {"v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors"}
    assert list(sampler.options)[:4] == ["euler", "euler_ancestral", "dpmpp_2m", "ddim"]
    assert isinstance(form.controls["scheduler"], ipywidgets.Dropdown)
    assert form.changes() == {}
    sampler.value = "dpmpp_2m"
    apply_settings(panel)
    panel.prompt.value, panel.width_box.value, panel.height_box.value = "owl", 64, 64
    generate(panel)
    graph = comfyui_server.requests_to("/prompt")[-1].json["prompt"]
    samplers = [n for n in graph.values() if n["class_type"] == "KSampler"]
    assert samplers[0]["inputs"]["sampler_name"] == "dpmpp_2m"


def test_a_value_the_server_does_not_list_is_kept_not_replaced(session, a1111_server):
    a1111_server.options["sd_model_checkpoint"] = "custom-merge.safetensors"  # loaded, not in sd-models
    session.use_image("a1111", host=a1111_server.url)
    form = load_settings(panels.image(session))
    assert form.controls["sd_model_checkpoint"].value == "custom-merge.safetensors"
    assert form.changes() == {}  # Apply would not switch the checkpoint behind the user's back


# -- the picture, once ----------------------------------------------------------------------------------


def test_a_picture_shows_once_and_only_the_cell_output_keeps_it(session, a1111_server):
    session.use_image("a1111", host=a1111_server.url)
    panel = panels.image(session)
    panel.prompt.value, panel.steps.value = "a lighthouse", 3
    cap = generate(panel)
    [shown] = pictures(cap.outputs)
    encoded = shown.data["image/png"]
    assert base64.b64decode(encoded) == panel.result.images[0]
    assert shown.metadata["lollms_magics"]["prompt"] == "a lighthouse"  # what a static viewer needs

    def tree(widget):
        return [widget] + [w for child in getattr(widget, "children", ()) for w in tree(child)]

    widgets = tree(panel.widget)
    assert [w for w in widgets if isinstance(w, ipywidgets.Image)] == []  # no thumbnail repeating it
    state = json.dumps([w.get_state() for w in widgets], default=repr)  # what saved widget state holds
    assert panel.prompt.model_id in state
    assert "<memory at" not in state and encoded[:200] not in state
