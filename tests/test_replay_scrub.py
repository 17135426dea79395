"""What the scrubber writes stays valid JSON, and secret settings never reach a replay file.

The scrubber masks key-like URL query values in streamed bodies as raw text,
chunk by chunk, where a JSON string escapes its quotes and backslashes: a
mask must never take a backslash away from its escape. Every line of a
replay file is JSON on its own, whatever the answers hold.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_magics import get_binding, replay
from lollms_magics.replay.scrub import Scrubber
from lollms_magics.tti import get_image_binding


@pytest.fixture(autouse=True)
def _no_tape() -> Iterator[None]:
    replay.stop()
    yield
    replay.stop()


@pytest.fixture(autouse=True)
def _no_secrets_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment's *_KEY values are masked too; none may happen to match the generated text.
    import os

    for name in list(os.environ):
        if name.upper().endswith(("_KEY", "_TOKEN", "_SECRET", "_PASSWORD")):
            monkeypatch.delenv(name)


def ollama_server_of(contents: list[str]) -> httpx.MockTransport:
    """An Ollama /api/chat that streams each of ``contents`` as one NDJSON event."""

    def handler(request: httpx.Request) -> httpx.Response:
        lines = [
            json.dumps({"model": "m", "message": {"role": "assistant", "content": c}, "done": False}) + "\n"
            for c in contents
        ]
        lines.append(json.dumps({"model": "m", "message": {"role": "assistant", "content": ""},
                                 "done": True, "done_reason": "stop", "eval_count": len(contents)}) + "\n")
        return httpx.Response(200, headers={"content-type": "application/x-ndjson"},
                              content=iter([line.encode() for line in lines]))

    return httpx.MockTransport(handler)


def openai_server_of(contents: list[str]) -> httpx.MockTransport:
    """An OpenAI /v1/chat/completions that streams each of ``contents`` as one server-sent event."""

    def handler(request: httpx.Request) -> httpx.Response:
        events = [
            "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": c}}]}) + "\n\n"
            for c in contents
        ]
        events.append("data: " + json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                      + "\n\ndata: [DONE]\n\n")
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=iter([e.encode() for e in events]))

    return httpx.MockTransport(handler)


def file_lines(path: Path) -> list[Any]:
    """Each line of a replay file, read as JSON Lines readers do (and as str.splitlines() would cut it)."""
    text = path.read_text(encoding="utf-8")
    assert text.split("\n")[:-1] == text.splitlines()  # no character other tools take for a line end
    return [json.loads(line) for line in text.splitlines()]


# -- ?key= in a streamed answer ----------------------------------------------------------------


@pytest.mark.parametrize(("content", "masked"), [
    ('see https://maps.test/?key=abc123secret" for the map', 'see https://maps.test/?key=***" for the map'),
    ('the url "https://x.test/a?key=abc\\" ends', 'the url "https://x.test/a?key=***" ends'),
    ("a?token=t0k\u00e9n\u2028and more", "a?token=***\u2028and more"),
    ('https://x.test/?api_key=s3cr3t&lang=fr"', 'https://x.test/?api_key=***&lang=fr"'),
])
@pytest.mark.parametrize("protocol", ["ollama", "openai"])
def test_a_key_in_a_streamed_url_is_masked_and_the_answer_replays(
    protocol: str, content: str, masked: str, tmp_path: Path
) -> None:
    path = tmp_path / "keys.jsonl"
    pieces = ["Here: ", content, " (end)"]
    server = ollama_server_of(pieces) if protocol == "ollama" else openai_server_of(pieces)
    replay.record(path)
    live = get_binding(protocol, host="http://maps.test:1234", model="m", transport=server).generate("Map?")
    assert live.text == "Here: " + content + " (end)"
    replay.stop()
    stored = path.read_text(encoding="utf-8")
    for secret in ("abc123secret", "t0k", "s3cr3t"):
        assert secret not in stored
    file_lines(path)

    replay.replay(path, speed=0)
    again = get_binding(protocol, host="http://maps.test:1234", model="m").generate("Map?")
    assert again.text == "Here: " + masked + " (end)"  # not "an event that is not JSON"
    assert again.done


@pytest.mark.parametrize("protocol", ["ollama", "openai"])
def test_a_secret_with_quotes_is_masked_in_its_escaped_form_too(
    protocol: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A streamed body is raw JSON: a secret holding a quote or a backslash is there escaped."""
    password = 'pa"ss\\w0rd-' + secrets.token_hex(4)
    monkeypatch.setenv("MY_SERVICE_PASSWORD", password)
    path = tmp_path / "escaped.jsonl"
    pieces = ["The password is ", password, "."]
    server = ollama_server_of(pieces) if protocol == "ollama" else openai_server_of(pieces)
    replay.record(path)
    live = get_binding(protocol, host="http://pw.test:1234", model="m", transport=server).generate("Tell")
    assert live.text == f"The password is {password}."
    replay.stop()
    stored = path.read_text(encoding="utf-8")
    assert password.split("-")[1] not in stored  # neither raw nor escaped
    file_lines(path)

    replay.replay(path, speed=0)
    again = get_binding(protocol, host="http://pw.test:1234", model="m").generate("Tell")
    assert again.text == "The password is ***."


# -- a property: whatever the strings, JSON in is JSON out ------------------------------------

_PARTS = [
    "a", "Z", "0", " ", '"', "\\", "\\\\", "/", "?", "&", "=", "#", "'", "key=", "?key=", "&token=",
    "?api_key=", "\\u0041", "\\n", "\n", "\r", "\t", "\u2028", "\u2029", "\x85", "\x00", "\x1f",
    "\x7f", "é", "漢", "🙂", "https://h.test/p", "sk-abcdef123456",
]


def generated(count: int, seed: int = 15) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_PARTS) for _ in range(rng.randint(1, 14))) for _ in range(count)]


def test_scrubbed_json_text_stays_json_for_any_string() -> None:
    scrubber = Scrubber()
    for text in generated(3000):
        for ascii_only in (True, False):
            event = json.dumps({"message": {"content": text}, "url": f"https://h.test/?key={text}"},
                               ensure_ascii=ascii_only)
            for framed in (event + "\n", "data: " + event + "\n\n"):
                out = scrubber.text(framed)
                payload = out.removeprefix("data: ").strip("\n")
                try:
                    json.loads(payload)
                except ValueError:
                    pytest.fail(f"scrubbing {framed!r} gave {out!r}, which is not JSON")


def test_every_line_of_a_replay_file_is_json_whatever_the_answers_hold(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    texts = generated(150, seed=2028)
    replay.record(path)
    live = {}
    for number, text in enumerate(texts):
        binding = get_binding("ollama", host="http://many.test:1", model="m",
                              transport=ollama_server_of([text, "|", text]))
        live[number] = binding.generate(f"prompt {number}: {text}").text
    replay.stop()
    lines = file_lines(path)
    assert len(lines) == len(texts) + 1

    replay.replay(path, speed=0)
    for number, text in enumerate(texts):
        binding = get_binding("ollama", host="http://many.test:1", model="m")
        again = binding.generate(f"prompt {number}: {text}")
        replayed = again.text  # no "event that is not JSON"
        assert again.done
        if "=" not in text:  # nothing to mask: the very same answer
            assert replayed == live[number] == text + "|" + text


# -- secret settings -----------------------------------------------------------------------------


def test_secret_settings_of_an_image_server_are_masked_in_the_file(
    lollms_webui_server: Any, a1111_server: Any, tmp_path: Path
) -> None:
    openai_key, hf_token = "sk-proj-" + secrets.token_hex(16), "hf_" + secrets.token_hex(12)
    lollms_webui_server.tti_settings.extend([
        {"name": "openai_api_key", "type": "str", "value": openai_key, "help": "Your OpenAI key"},
        {"name": "hf_token", "type": "str", "value": hf_token, "help": "Hugging Face token"},
        {"name": "max_tokens", "type": "int", "value": 77, "help": "not a secret"},
    ])
    a1111_server.options.update({"openai_api_key": openai_key, "civitai_token": hf_token,
                                 "sd_vae": "auto", "use_token_merging": True})
    path = tmp_path / "settings.jsonl"
    webui_host, a1111_host = lollms_webui_server.url, a1111_server.url
    replay.record(path)
    webui = get_image_binding("lollms", host=webui_host, client_id="loopback-client-id")
    live_template = webui.get_settings()
    live_options = get_image_binding("a1111", host=a1111_host).get_settings()
    replay.stop()
    assert {"name": "openai_api_key", "type": "str", "value": openai_key,
            "help": "Your OpenAI key"} in live_template

    stored = path.read_text(encoding="utf-8")
    assert openai_key not in stored and hf_token not in stored
    file_lines(path)

    lollms_webui_server.stop()
    a1111_server.stop()
    replay.replay(path, speed=0)
    template = get_image_binding("lollms", host=webui_host, client_id="x").get_settings()
    values = {entry["name"]: entry["value"] for entry in template}
    assert values["openai_api_key"] == values["hf_token"] == "***"
    assert values["max_tokens"] == 77 and values["model"] == "stabilityai/sdxl-turbo"
    options = get_image_binding("a1111", host=a1111_host).get_settings()
    assert options["openai_api_key"] == options["civitai_token"] == "***"
    assert options["sd_vae"] == "auto" and options["use_token_merging"] is True
    assert set(options) == set(live_options)
