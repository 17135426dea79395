"""The panels in a real browser: JupyterLab on loopback, driven in headless Chromium.

JupyterLab is served on 127.0.0.1 with a token; a notebook opens the four panels
(``%lollms panel ...``) after a cell chose the model ``slow``, which the server
lists as ``slow:latest``. tests/browser/drive.mjs (playwright-core over Debian's
``chromium``) picks the loopback OpenAI-compatible server in the settings panel,
types its API key, presses Refresh (the model in use stays selected) and Use;
sends a prompt from the chat's question box with Ctrl+Enter, then two long
stories (Shift+Enter, Ctrl+Enter) and reads the conversation box's scroll
position; makes, saves and stops a picture; summarizes a variable, uploads a
long file, stops its summary and resumes it without a new upload; streams a
slow answer, scrolls up while it streams and stops it; then saves the
notebook. The saved file must hold the Markdown record of each action, once,
and no key anywhere, widget state included. Screenshots and what the driver
saw (browser-seen.json) are copied to tests/artifacts/.

Needs ``chromium`` (apt) and ``npm install`` in tests/browser (see
tests/browser/package.json); without them this test fails, it never skips:
deselect it with ``-m "not browser"`` on a machine that lacks them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

HERE = Path(__file__).parent
DRIVER = HERE / "browser" / "drive.mjs"
ARTIFACTS = HERE / "artifacts"
CHROMIUM = os.environ.get("LOLLMS_MAGICS_CHROMIUM", "/usr/bin/chromium")
KEY = "sk-browser-test-5f3a9c0e7d21"
PROMPT = "Name three rivers of France"
REPORT = "The harbour opened in 1852. Ships came from Lisbon and Bristol. The lighthouse was lit in 1901."
SUMMARY = "The harbour opened in 1852; the lighthouse followed in 1901."

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]


def _require() -> None:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    if shutil.which("node") is None:
        missing.append("node (apt-get install -y nodejs npm)")
    if not (HERE / "browser" / "node_modules" / "playwright-core").is_dir():
        missing.append("playwright-core (cd tests/browser && npm install)")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        missing.append("jupyterlab (pip install -e '.[test]')")
    if missing:
        pytest.fail("the browser test needs: " + "; ".join(missing) + ' (or deselect it: -m "not browser")')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_settings(folder: Path) -> None:
    """JupyterLab user settings: save widget state with the notebook; no news or update checks."""
    settings = {
        "@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings": {"saveState": True},
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false", "checkForUpdates": False},
    }
    for name, value in settings.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


def _notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on loopback: (base url, token, root folder)."""
    _require()
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    _write_settings(home / "lab-settings")
    port, token = _free_port(), "t" + os.urandom(12).hex()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOLLMS_", "OPENAI_", "OLLAMA_", "JUPYTER"))}
    env.update(HOME=str(home), JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), JUPYTER_PLATFORM_DIRS="1")
    with open(tmp_path / "jupyterlab.log", "wb") as log:
        yield from _serve_lab(root, port, token, env, log, tmp_path)


def _serve_lab(root, port, token, env, log, tmp_path):
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0",
         "--ServerApp.allow_root=True"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start; see {tmp_path / 'jupyterlab.log'}")
            time.sleep(0.5)
        yield url, token, root
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


def _drive(config: dict, tmp_path: Path) -> dict:
    run = subprocess.run(["node", str(DRIVER), json.dumps(config)], capture_output=True, text=True,
                         timeout=360, cwd=DRIVER.parent)
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("browser-*.png"):  # a failure shot from an earlier run would mislead
        old.unlink()
    copies = []
    for shot in Path(config["shots"]).glob("*.png"):
        target = ARTIFACTS / f"browser-{shot.name}"
        shutil.copy(shot, target)
        copies.append(str(target))
    print("screenshots:", *copies, sep="\n  ")
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the driver printed nothing; stderr:\n{run.stderr[-3000:]}"
    seen = json.loads(lines[-1])
    (ARTIFACTS / "browser-seen.json").write_text(json.dumps(seen, indent=1))  # what the driver saw, kept
    assert seen["ok"], f"{seen.get('error')}\nsteps: {seen.get('steps')}\nstderr:\n{run.stderr[-3000:]}"
    return seen


STORY = "Tell a long story, number"
LOG_LINE = "Harbour log, day {n}: the {ship} came in with salt and left with {goods}."
NOTES = "The harbour log lists ships arriving with salt and leaving with goods."


def harbour_log() -> str:
    """A long document (several chunks), for the summarize panel's Stop and resume."""
    ships, goods = ("Marie", "Aurora", "Swift", "Heron"), ("wool", "tin", "cider", "slate")
    calm = " The tide was calm." * 20
    days = [LOG_LINE.format(n=n, ship=ships[n % 4], goods=goods[n % 3]) + calm for n in range(1, 61)]
    return "\n\n".join(days)


def reply(prompt: str) -> str:
    """The loopback model: echoes the chat prompt, tells long stories, and sums up anything else."""
    if prompt.startswith(STORY):
        n = prompt.split()[-1]
        lines = [f"Story {n}, paragraph {i}: the river ran on past the mill." for i in range(1, 31)]
        return "\n\n".join([*lines, f"The end of story {n}."])
    if "Harbour log, day" in prompt:  # a part of the uploaded document: slow enough to be stopped
        time.sleep(0.6)
        return NOTES
    return f"Echo: {prompt}" if prompt == PROMPT else SUMMARY


def test_panels_in_jupyterlab_stream_an_answer_and_leave_a_keyless_record(
    jupyterlab, openai_server, a1111_server, tmp_path
):
    url, token, root = jupyterlab
    openai_server.api_key = KEY  # the answers come only if the key typed in the panel reached the session
    openai_server.reply = reply
    # The model in use is `slow` (a cell chose it) and the server lists it as `slow:latest`.
    openai_server.models = ["test-model", "slow:latest"]
    openai_server.slow_pieces, openai_server.slow_delay = 300, 0.03  # nine seconds, unless stopped
    a1111_server.step_delay = 0.05  # a picture of 200 steps takes ten seconds, unless stopped
    cells = [
        f"%load_ext lollms_magics\n%lollms use openai:slow --host {openai_server.url}",
        "%lollms panel settings",
        "%lollms panel chat",
        f"%lollms tti use a1111 --host {a1111_server.url}\n%lollms panel image",
        f"report = {REPORT!r}\n%lollms panel summarize",
    ]
    _notebook(root / "panels.ipynb", cells)
    document = tmp_path / "harbour-log.txt"
    document.write_text(harbour_log())
    shots = tmp_path / "shots"
    shots.mkdir()
    extra = [
        {"panel": "image", "record": {"selector": ".jp-RenderedImage img"}, "actions": [
            {"fill": [["textarea", "prompt", "a lighthouse at dusk"]], "click": "Generate",
             "expect": "1 picture(s) in"},
            {"click": "Save", "expect": "saved 1 picture(s)"},
            {"fill": [["inline-hbox", "steps", "200"]], "click": "Generate", "then": "Stop",
             "when": "making the picture", "wait": 500, "expect": "stopped: the server was asked to drop",
             "read": "image_stopped", "shot": "image-stopped"}]},
        {"panel": "summarize", "record": {"selector": ".jp-RenderedMarkdown", "text": "lollms summary"},
         "actions": [
             {"fill": [["text", "or path", "report"]], "click": "Summarize", "expect": SUMMARY},
             {"upload": [[".lollms-summarize-upload", str(document)]],
              "expect": "kept in the kernel until Clear"},
             {"click": "Summarize", "when": r"chunk \d+/\d+ read", "then": "Stop", "wait": 300,
              "expect": "stopped; what was done is kept", "read": "summarize_stopped",
              "from": ".lollms-summarize-status", "shot": "summarize-stopped"},
             # Summarize again, with no new upload: the kept file, and the parts already read are reused.
             {"click": "Summarize", "expect": "done in", "read": "summarize_resumed",
              "from": ".lollms-summarize-status", "shot": "summarize-resumed"}]},
    ]
    config = {"url": url, "token": token, "notebook": "panels.ipynb", "host": openai_server.url, "key": KEY,
              "prompt": PROMPT, "profile": str(tmp_path / "chromium-profile"), "shots": str(shots),
              "chromium": CHROMIUM, "extra": extra, "story": STORY,
              # Listed as slow:latest, the entry keeps the spelling in use: Use uses `slow`.
              "stop": {"model": "slow:latest", "uses": "slow", "prompt": "Count slowly"}}
    seen = _drive(config, tmp_path)
    assert seen["model_after_refresh"] == "slow:latest"  # the model in use kept, as the server spells it
    assert seen["answer_in_panel"].startswith(f"Echo: {PROMPT}") and seen["sent_by_keyboard"]
    assert seen["key_field_cleared"]
    # The exchange is one output of the cell, hidden there and shown in the panel's box: once on the page.
    assert seen["record_in_cell"] == {"records": 1, "hidden": 1, "shown": 1, "in_box": 1}
    assert seen["story_shown"] == {"records": 1, "hidden": 1, "shown": 1, "in_box": 1}
    first, second = seen["stories"]
    assert first["height"] <= 482 and second["scrolled"] > first["scrolled"] > 0  # capped, so it scrolls
    assert first["from_bottom"] < 40 and second["from_bottom"] < 40  # at the newest text
    assert seen["newest_in_view"] is True and seen["oldest_in_view"] is False
    assert seen["streaming"]["from_bottom"] < 40  # followed while it streams
    up = seen["scrolled_up"]
    assert up["before"]["from_bottom"] > 200  # the user scrolled up to read...
    assert up["after"]["chars"] > up["before"]["chars"]  # ...the answer went on below...
    assert abs(up["after"]["top"] - up["before"]["top"]) < 2  # ...and the box stayed where the user put it
    assert seen["chat_status_after_stop"].strip() == ""  # the stop is said once, in the exchange
    assert "stopped: the server was asked to drop the picture" in seen["image_stopped"]
    # The summarize panel: one status line, true at each end; the resume read no part twice but the one cut.
    assert seen["summarize_stopped"].strip() == "stopped; what was done is kept (Summarize again to resume)"
    resumed = seen["summarize_resumed"].strip()
    assert resumed.startswith("done in ") and " reused" in resumed
    assert not any(word in resumed for word in ("stopped", "left", "reading"))
    assert seen["image_done"] and seen["summarize_done"]
    assert seen["partial"].startswith("tok tok") and seen["partial"].endswith("▍")  # streamed, not at once
    assert openai_server.wait_for_disconnect()  # Stop closed the stream
    assert "using openai · model test-model" in seen["settings_status"]
    sent = openai_server.requests_to("/v1/chat/completions")
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in sent)
    assert sent[0].json["temperature"] == 0.7 and any(REPORT in str(r.json["messages"]) for r in sent)
    assert sent[-1].json["model"] == "slow"
    assert a1111_server.requests_to("/sdapi/v1/txt2img")[-1].json["prompt"] == "a lighthouse at dusk"
    assert len(a1111_server.requests_to("/sdapi/v1/interrupt")) == 1
    assert a1111_server.jobs[-1]["interrupted"] is True and a1111_server.jobs[-1]["steps_done"] < 200
    assert [p.suffix for p in (root / "lollms-images").iterdir()] == [".png"]
    saved = (root / "panels.ipynb").read_text()
    assert KEY not in saved
    nb = nbformat.reads(saved, as_version=4)  # joins the saved lists of lines
    assert "application/vnd.jupyter.widget-state+json" in nb["metadata"]["widgets"]  # state was saved
    state = json.dumps(nb["metadata"]["widgets"])
    assert "The end of story" not in state and f"Echo: {PROMPT}" not in state  # no second copy of the chat
    outputs = [[o.get("data", {}) for o in c.get("outputs", [])] for c in nb["cells"]]
    markdown = [[data.get("text/markdown", "") for data in cell] for cell in outputs]
    # One settings line, replaced by each Use: the settings in force when saved (the last Use chose `slow`).
    settings_lines = [text for text in markdown[1] if text.startswith("**lollms settings**")]
    assert len(settings_lines) == 1
    assert settings_lines[0].startswith("**lollms settings**: `openai` · model `slow`")
    chat_records = [text for text in markdown[2] if text.startswith("**You:**")]
    assert len(chat_records) == 4 and f"Echo: {PROMPT}" in chat_records[0]
    assert [text.count("The end of story") for text in chat_records] == [0, 1, 1, 0]
    stopped = chat_records[3]
    assert "stopped: the answer was cut short" in stopped and 0 < stopped.count(" tok tok") < 300
    assert any(text.startswith("**lollms image**: *a lighthouse at dusk*") for text in markdown[3])
    assert sum("image/png" in data for data in outputs[3]) == 1
    summaries = [text for text in markdown[4] if text.startswith("**lollms summary**")]
    assert len(summaries) == 3
    assert summaries[0].startswith("**lollms summary** of `report`") and summaries[0].endswith(SUMMARY)
    head = [text.split("\n\n")[0] for text in summaries]
    assert head[1].startswith("**lollms summary** of `harbour-log.txt`") and head[1].endswith(" · stopped")
    assert "failed" not in summaries[1]  # a stop is a stop in the saved record
    assert head[2].startswith("**lollms summary** of `harbour-log.txt`") and "stopped" not in head[2]
    parts = [r for r in sent if "Harbour log, day" in str(r.json["messages"][-1]["content"])]
    first_read = {str(r.json["messages"][-1]["content"]) for r in parts}
    assert len(parts) < 2 * len(first_read)  # the resume did not read the document again
