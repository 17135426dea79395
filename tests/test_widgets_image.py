"""The image panel in the kernel: Generate, the service settings and Save, against loopback image servers."""

from __future__ import annotations

import base64
import io
import json

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from PIL import Image

from lollms_magics import panels
from lollms_magics.core.session import Session
from lollms_magics.widgets.form import SettingsForm, entries


@pytest.fixture
def session(monkeypatch):
    for name in ("LOLLMS_CLIENT_ID", "OPENAI_API_KEY", "LOLLMS_MAGICS_BINDING"):
        monkeypatch.delenv(name, raising=False)
    InteractiveShell.instance()
    s = Session()
    yield s
    s.close_images()
    s.close()


def generate(panel):
    with capture_output() as cap:
        panel.generate.click()
        assert panel.wait(30)
    return cap


def test_generate_shows_the_picture_and_records_it_in_the_cell(session, a1111_server):
    panel = panels.image(session)
    panel.binding.value, panel.host.value = "a1111", a1111_server.url
    panel.prompt.value, panel.negative.value = "a red fox in the snow", "blurry"
    panel.width_box.value, panel.height_box.value, panel.seed.value, panel.steps.value = 256, 192, 42, 5
    cap = generate(panel)
    sent = a1111_server.requests_to("/sdapi/v1/txt2img")[-1].json
    assert (sent["prompt"], sent["negative_prompt"], sent["seed"], sent["steps"]) == (
        "a red fox in the snow", "blurry", 42, 5)
    assert (sent["width"], sent["height"]) == (256, 192)
    assert session.image_target().name == "a1111"  # the panel's choice is the session's
    [picture] = panel.result.images
    assert Image.open(io.BytesIO(picture)).size == (256, 192)
    caption, shown = cap.outputs[-2], cap.outputs[-1]
    assert caption.data["text/markdown"].startswith(
        "**lollms image**: *a red fox in the snow* · 256×192 · seed 42")
    recorded = Image.open(io.BytesIO(base64.b64decode(shown.data["image/png"])))
    assert recorded.size == (256, 192)
    info = shown.metadata["lollms_magics"]
    assert info["seed"] == 42 and info["binding"] == "a1111"
    assert panel.progress.value == 1.0 and not panel.generate.disabled


def test_progress_follows_the_server(session, a1111_server):
    a1111_server.step_delay = 0.05  # 20 steps: one second, with progress on /sdapi/v1/progress
    session.use_image("a1111", host=a1111_server.url)
    panel = panels.image(session)
    panel.prompt.value, panel.steps.value = "a lighthouse", 20
    seen = []
    panel.progress.observe(lambda change: seen.append(change["new"]), names="value")
    generate(panel)
    assert any(0 < v < 1 for v in seen), seen
    assert seen[-1] == 1.0


def test_the_settings_form_is_built_from_the_service_template(session, lollms_webui_server):
    session.use_image("lollms", host=lollms_webui_server.url, client_id="loopback-client-id")
    panel = panels.image(session)
    assert (panel.binding.value, panel.host.value) == ("lollms", lollms_webui_server.url)
    panel.load.click()
    assert panel.wait()
    form = panel.form
    assert [e["name"] for e in form.entries] == ["model", "steps"]
    assert list(form.controls["model"].options) == [
        "stabilityai/sdxl-turbo", "runwayml/stable-diffusion-v1-5"]
    assert form.controls["steps"].value == 4
    form.controls["steps"].value = 8
    form.controls["model"].value = "runwayml/stable-diffusion-v1-5"
    with capture_output() as cap:
        panel.apply_button.click()
        assert panel.wait()
    applied = {e["name"]: e["value"] for e in lollms_webui_server.tti_settings}
    assert applied == {"model": "runwayml/stable-diffusion-v1-5", "steps": 8}
    assert cap.outputs[-1].data["text/markdown"] == (
        "**lollms image settings**: model=runwayml/stable-diffusion-v1-5, steps=8")
    assert form.changes() == {}  # the applied values are the new starting point


def test_a_server_without_settings_says_so(session, openai_server):
    session.use_image("openai", host=openai_server.url)
    panel = panels.image(session)
    panel.load.click()
    assert panel.wait()
    assert "openai cannot show its image settings: its API has no such call" in panel.status.value
    assert panel.apply_button.disabled


@pytest.mark.filterwarnings("ignore:Widget.widgets is deprecated:DeprecationWarning")
def test_a_secret_setting_is_hidden_and_never_kept_in_widget_state():
    import ipywidgets

    template = [{"name": "api_key", "type": "str", "value": "sk-served-0123456789", "help": "key"},
                {"name": "quality", "type": "str", "value": "hd", "options": ["standard", "hd"]},
                {"name": "guidance", "type": "float", "value": 7.5}, {"name": "tiled", "value": False},
                {"name": "loras", "value": ["a", "b"]}]
    form = SettingsForm(ipywidgets, template)
    assert [e["name"] for e in form.entries] == ["api_key", "quality", "guidance", "tiled"]  # no list control
    assert form.controls["api_key"].value == ""  # the server's value is not shown
    form.controls["api_key"].value = "sk-typed-abcdef0123456"
    assert form.controls["api_key"].value == ""
    state = json.dumps([w.get_state() for w in list(ipywidgets.Widget.widgets.values())], default=repr)
    assert "sk-typed-abcdef0123456" not in state and "sk-served-0123456789" not in state
    form.controls["guidance"].value = 5.0
    assert form.changes() == {"api_key": "sk-typed-abcdef0123456", "guidance": 5.0}


def test_dict_settings_become_typed_entries():
    found = entries({"steps": 20, "cfg": 7.0, "hires": True, "sampler": "Euler", "vae": None, "grid": {}})
    assert [(e["name"], e["type"]) for e in found] == [
        ("steps", "int"), ("cfg", "float"), ("hires", "bool"), ("sampler", "str"), ("vae", "nonetype")]


def test_save_writes_the_pictures_without_overwriting(session, a1111_server, tmp_path):
    session.use_image("a1111", host=a1111_server.url)
    panel = panels.image(session)
    assert panel.save.disabled
    panel.prompt.value, panel.seed.value = "Two cats!", 7
    generate(panel)
    panel.folder.value = str(tmp_path / "pictures")
    with capture_output() as cap:
        first = panel.save_result()
        panel.save.click()
    names = sorted(p.name for p in (tmp_path / "pictures").iterdir())
    assert names == ["two-cats-7-1.png", "two-cats-7.png"]
    assert first[0].read_bytes() == panel.result.images[0]
    assert cap.outputs[-1].data["text/markdown"].startswith("**lollms image**: saved `")


def test_an_empty_prompt_makes_nothing(session, a1111_server):
    session.use_image("a1111", host=a1111_server.url)
    panel = panels.image(session)
    generate(panel)
    assert "write a prompt first" in panel.status.value
    assert a1111_server.requests_to("/sdapi/v1/txt2img") == []
