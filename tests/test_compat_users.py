"""lollms-client users' own scripts, both eras, run unchanged but for the import on the loopback servers.

The scripts in ``tests/course_users/`` are written the way lollms-client's
users write theirs (0.x: ``binding_name``, ``lc.binding``, ``listModels``;
1.x: ``llm_binding_name``, ``llm_binding_config``, ``lc.llm``,
``list_models``), one per group of calls of issue 21. Each runs as its own
process, pointed at a loopback server of this process the way a user runs a
script on another server (``LOLLMS_CLIENT_HOST`` / ``LOLLMS_CLIENT_BINDING``,
see ``lollms_magics.compat.client``). What is checked is what the script
prints and what the server received.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.servers import LOLLMS_KEY, LollmsServer, LollmsWebuiServer, OllamaServer, OpenAIServer
from tests.servers.base import Exchange, tiny_png

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "tests" / "course_users"
TEXT_BACKENDS = ("lollms_webui", "lollms_server", "ollama", "openai")
GENERATION_PATHS = ("/lollms_generate", "/lollms_generate_with_images", "/api/chat", "/v1/chat/completions")
PERSONALITIES = [{"name": "lollms", "category": "generic"}]
MCP_INSTEAD = "lc.generate_with_tools(prompt, tools=[f, g]) lets the model call Python functions"


class PersonalitiesLollmsServer(LollmsServer):
    """The new LoLLMs server with its ``/lollms/v1/personalities`` listing."""

    def setup_routes(self) -> None:
        super().setup_routes()
        self.route("GET", "/lollms/v1/personalities", self.personalities)

    def personalities(self, ex: Exchange) -> None:
        ex.send_json(PERSONALITIES)  # the key was checked before any route


def _server(kind: str):
    return {
        "lollms_webui": LollmsWebuiServer,
        "lollms_server": PersonalitiesLollmsServer,
        "ollama": OllamaServer,
        "openai": OpenAIServer,
    }[kind]()


@pytest.fixture
def server(request):
    srv = _server(request.param)
    srv.stall_timeout = 5.0
    srv.kind = request.param
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def run(name: str, tmp_path: Path, srv: Any, extra: dict[str, str] | None = None) -> list[str]:
    """Run the script ``name`` against ``srv``; the lines it printed (it must succeed)."""
    (tmp_path / "photo.png").write_bytes(tiny_png())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOLLMS", "OLLAMA", "OPENAI"))}
    env.update({"HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
                "LOLLMS_CLIENT_HOST": srv.url})
    env["LOLLMS_CLIENT_BINDING"] = srv.kind if srv.kind in ("ollama", "openai") else "lollms"
    if srv.kind == "lollms_server":
        env["LOLLMS_API_KEY"] = LOLLMS_KEY
    env.update(extra or {})
    done = subprocess.run([sys.executable, str(SCRIPTS / name)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [line.rstrip() for line in done.stdout.splitlines()]


def generations(srv: Any) -> list[dict[str, Any]]:
    """The bodies of the generation requests ``srv`` received, in order."""
    return [r.json for r in srv.requests if r.method == "POST" and r.path in GENERATION_PATHS]


def sent_messages(srv: Any, body: dict[str, Any]) -> list[tuple[str, str]]:
    """``(role, text)`` of a generation body, the lollms-webui transcript read back into messages."""
    if "prompt" in body:
        return [(m.group(1), m.group(2).strip())
                for m in re.finditer(r"!@>(\w+): (.*?)(?=\n!@>|$)", body["prompt"], re.DOTALL)
                if m.group(2).strip()]
    out = []
    for m in body["messages"]:
        content = m["content"]
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if p.get("type") == "text")
        out.append((m["role"], content))
    return out


def images_of(body: dict[str, Any]) -> list[str]:
    """The base64 pictures a generation body carries, whatever the protocol."""
    if "images" in body:
        return list(body["images"])
    found = []
    for m in body.get("messages", []):
        found += m.get("images") or []
        if isinstance(m["content"], list):
            found += [p["image_url"]["url"].split(",", 1)[1] for p in m["content"]
                      if p.get("type") == "image_url"]
    return found


def model_names(srv: Any) -> list[str]:
    return list(srv.models)


TUTOR = [
    ("system", "You are a geography tutor."),
    ("user", "Name the capital of France."),
    ("assistant", "Paris."),
    ("user", "And the capital of Italy?"),
]


# ------------------------------------------------------------------ discussions, pictures, models


@pytest.mark.parametrize("server", TEXT_BACKENDS, indirect=True)
def test_v0_discussion_pictures_models_and_personalities(server, tmp_path: Path) -> None:
    out = run("v0_discussion.py", tmp_path, server)
    first, last = model_names(server)[0], model_names(server)[-1]
    personalities = {
        "lollms_webui": "{'status': True, 'personalities': ['generic/lollms'], 'active_personality_id': 0}",
        "lollms_server": str(PERSONALITIES),
    }.get(server.kind, "Functionality not available for the current binding")
    assert out == [
        "Discussion: Echo: And the capital of Italy?",
        "Streamed: True",
        f"Models: {', '.join(model_names(server))}",
        f"Switched to: {last}",
        "Picture: Echo: Describe this picture.",
        f"Personalities: {personalities}",
    ]
    discussion, streamed, picture = generations(server)
    # The markup became chat messages (lollms-webui: its own transcript, the markers not doubled).
    assert sent_messages(server, discussion) == sent_messages(server, streamed) == TUTOR
    assert (discussion["stream"], streamed["stream"]) == (False, True)
    if "prompt" in discussion:
        assert discussion["prompt"].count("!@>") == 5 and discussion["prompt"].endswith("\n!@>assistant:")
    assert discussion.get("n_predict", discussion.get("max_tokens", discussion.get("options", {}).get(
        "num_predict"))) == 64
    # The picture went with the prompt, to the model switched to.
    assert images_of(picture) and all(len(i) > 50 for i in images_of(picture))
    assert picture.get("model", picture.get("model_name")) == last
    assert discussion.get("model", discussion.get("model_name")) in (first, "")


@pytest.mark.parametrize("server", TEXT_BACKENDS, indirect=True)
def test_v1_discussion_messages_switches_and_listings(server, tmp_path: Path) -> None:
    out = run("v1_discussion.py", tmp_path, server)
    first, last = model_names(server)[0], model_names(server)[-1]
    personalities = {
        "lollms_webui": "{'status': True, 'personalities': ['generic/lollms'], 'active_personality_id': 0}",
        "lollms_server": str(PERSONALITIES),
    }.get(server.kind, "{'status': False, 'error': 'Functionality not available for the current binding', "
                       "'message': 'Functionality not available for the current binding'}")
    assert out == [
        "Discussion: Echo: And the capital of Italy?",
        "Messages: Echo: Name a moon of Mars.",
        f"Switched to: {last} ({last})",
        "Picture: Echo: Describe this picture.",
        f"Back to: {first}",
        "Again: Echo: Say hi.",
        f"Personalities: {personalities}",
    ]
    discussion, messages, picture, again = generations(server)
    assert sent_messages(server, discussion) == TUTOR  # "!@>alice:" / "!@>lollms:" read as user / assistant
    assert sent_messages(server, messages) == [("system", "Be brief."), ("user", "Name a moon of Mars.")]
    assert picture.get("model", picture.get("model_name")) == last and images_of(picture)
    assert again.get("model", again.get("model_name")) == first and not images_of(again)


def test_split_reads_text_before_any_header_as_system_and_drops_empty_turns() -> None:
    from lollms_magics.compat.generation import split_discussion

    text = ("Be terse.\n!@>user: hi\n!@>assistant:\n!@>user: still there?\n"
            "!@>system: later rule\n!@>assistant:")
    assert split_discussion(text) == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "hi\n\nstill there?\n\nlater rule"},
    ]


# ------------------------------------------------------------------ code and questions


def _helper_reply(prompt: str) -> str:
    if "adds two numbers" in prompt:
        return "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
    if "Here is the code so far" in prompt:
        return "```python\n    y = 2\n    return x + y\n```"
    if "long function" in prompt:
        return "```python\ndef long():\n    x = 1\n    y ="  # cut: the fence is never closed
    if "hello world" in prompt:
        return ("File: hello.py\n```python\nprint('hello')\n```\n"
                "File: hello.js\n```javascript\nconsole.log('hello')\n```")
    if "Is Paris in France" in prompt:
        return '{"answer": true, "explanation": "Paris is in France."}'
    if "Which is a planet" in prompt:
        return '{"index": 1, "explanation": "Mars is a planet."}'
    if "most massive first" in prompt:
        return '{"ranking": [2, 1, 0], "explanation": "Jupiter, then Mars, then the Moon."}'
    if "Extract the person" in prompt:
        return '{"name": "Ada Lovelace", "age": 36}'
    return "Echo: " + prompt


@pytest.mark.parametrize("server", TEXT_BACKENDS, indirect=True)
def test_v0_code_blocks_and_questions(server, tmp_path: Path) -> None:
    server.reply = _helper_reply
    server.json_reply = lambda prompt, schema: _helper_reply(prompt)
    out = run("v0_helpers.py", tmp_path, server)
    assert out == [
        "Code:", "def add(a, b):", "    return a + b",
        "Long code:", "def long():", "    x = 1", "    y = 2", "    return x + y",
        "File hello.py (python): print('hello')",
        "File hello.js (javascript): console.log('hello')",
        "0 - python True print('hi')",
        "1 b.js javascript False console.log(1)",
        "Yes/no: True",
        "Yes/no explained: {'answer': True, 'explanation': 'Paris is in France.'}",
        "Choice: 1",
    ]
    bodies = generations(server)
    assert len(bodies) == 7  # code, long code and its continuation, files, two yes/no, the choice
    yes_no = sent_messages(server, bodies[4])
    assert yes_no[0][0] == "system" and yes_no[0][1].startswith("You answer geography questions.")
    assert "Context:\nParis is the capital of France." in yes_no[-1][1]
    choice = sent_messages(server, bodies[6])[-1][1]
    assert "0. The Moon\n1. Mars\n2. The Sun" in choice and "Astronomy basics." in choice


@pytest.mark.parametrize("server", ["ollama", "openai", "lollms_server"], indirect=True)
def test_v1_structured_content_code_files_and_questions(server, tmp_path: Path) -> None:
    server.reply = _helper_reply
    server.json_reply = lambda prompt, schema: _helper_reply(prompt)
    out = run("v1_helpers.py", tmp_path, server)
    assert out == [
        "Person: {'name': 'Ada Lovelace', 'age': 36}",
        "Code:", "def add(a, b):", "    return a + b",
        "hello.py [python] complete=True",
        "hello.js [javascript] complete=True",
        "Yes/no: {'answer': True, 'explanation': 'Paris is in France.'}",
        "Choice: {'index': 1, 'explanation': 'Mars is a planet.'}",
        "Ranking: [2, 1, 0]",
        "Thinking: Mars.",
    ]
    person, code = generations(server)[:2]
    system = sent_messages(server, person)[0]
    # The caller's system prompt first, then the schema's instructions; the schema constrains the server.
    assert system[0] == "system" and system[1].startswith("You extract data precisely.")
    wire = json.dumps(person.get("format") or person.get("response_format"))
    assert '"age"' in wire and '"integer"' in wire
    assert sent_messages(server, code)[0][1].startswith("You write Python 3.")


# ------------------------------------------------------------------ long texts


def _long_reply(prompt: str) -> str:
    if "The sky is blue." in prompt:
        return "Blue."
    if "Write a summary of the whole document" in prompt:
        return "Every town ships grain: town 1 ships 10 tonnes, town 159 ships 1590 tonnes."
    return "- A town ships grain by boat and rail."


@pytest.mark.parametrize("server", ["ollama"], indirect=True)
def test_v1_long_context_processing_steps_through_the_callback(server, tmp_path: Path) -> None:
    server.reply = _long_reply
    out = run("v1_long_context.py", tmp_path, server)
    starts = [ln for ln in out if ln.startswith("[MSG_TYPE_STEP_START] Processing chunk")]
    ends = [ln for ln in out if ln.startswith("[MSG_TYPE_STEP_END] Step")]
    total = len(starts)
    assert total >= 3 and len(ends) == total
    assert starts[0] == f"[MSG_TYPE_STEP_START] Processing chunk 1/{total} " \
                        f"{{'step': 1, 'total_steps': {total}, 'progress': 0.0}}"
    assert ends[-1] == f"[MSG_TYPE_STEP_END] Step {total} completed {{'progress': 90.0}}"
    # Each part starts, then ends, in order, before the synthesis.
    steps = [ln for ln in out if ln.startswith("[")]
    assert steps[: 2 * total] == [x for pair in zip(starts, ends, strict=True) for x in pair]
    assert steps[2 * total:] == [
        "[MSG_TYPE_STEP_START] Synthesizing final response... {'progress': 95}",
        "[MSG_TYPE_STEP_END] Final synthesis complete {'progress': 100}",
        "[MSG_TYPE_STEP] Content fits in a single pass {}",
    ]
    assert out[-3] == "Result: Every town ships grain: town 1 ships 10 tonnes, town 159 ships 1590 tonnes."
    assert out[-1] == "Short: Blue."
    bodies = generations(server)
    assert "What colour is the sky?" in _last_user(bodies[-1])  # one call for the short text
    # The task reached every call; each part's call stayed within the 2,048-token window asked for.
    assert all("List the towns and the grain each ships." in json.dumps(b) for b in bodies[:-1])
    assert all(b["options"]["num_ctx"] == 2048 for b in bodies[:-1])
    read = "".join(json.dumps(b["messages"]) for b in bodies[:total])
    assert all(f"town {i} ships {i * 10} tonnes" in read for i in range(1, 160))  # every section was read


def _last_user(body: dict[str, Any]) -> str:
    return [m["content"] for m in body["messages"] if m["role"] == "user"][-1]


def test_long_context_processing_refuses_a_fill_share_out_of_range() -> None:
    from lollms_magics import LollmsClient

    lc = LollmsClient("ollama", "http://127.0.0.1:9")
    with pytest.raises(ValueError, match=r"context_fill_percentage must be between 0\.1 and 0\.9, got 0\.95"):
        lc.long_context_processing("text", "task", context_fill_percentage=0.95)


# ------------------------------------------------------------------ tools


@pytest.mark.parametrize("server", ["ollama", "openai", "lollms_server"], indirect=True)
def test_v1_generate_with_tools_runs_the_calls_and_returns_lollms_clients_dict(server, tmp_path) -> None:
    server.tool_script = [[("get_weather", {"city": "Paris"}), ("add", {"a": 2, "b": 3})]]
    out = run("v1_tools.py", tmp_path, server)
    assert out == [
        "Calling get_weather with {'city': 'Paris'}",
        "Got {'output': 'Sunny in Paris, 22 C', 'success': True}",
        "Calling add with {'a': 2, 'b': 3}",
        "Got {'output': '5', 'success': True}",
        "Response: Results: Sunny in Paris, 22 C | 5",
        "Calls: [(1, 'get_weather', {'city': 'Paris'}), (1, 'add', {'a': 2, 'b': 3})]",
        "Results: [{'output': 'Sunny in Paris, 22 C', 'success': True}, {'output': '5', 'success': True}]",
        "Rounds: 2",
        "Pending: ('get_weather', {'city': 'Paris'}, True) []",
    ]
    first, second, pending = generations(server)
    # The functions went as the server's tools, described by the dicts; the system prompt first.
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert offered["get_weather"]["description"] == "Current weather for a city"
    assert offered["add"]["parameters"]["properties"] == {"a": {"type": "integer"}, "b": {"type": "integer"}}
    assert first["messages"][0] == {"role": "system", "content": "Use the tools."}
    assert [m["role"] for m in second["messages"]][-3:] == ["assistant", "tool", "tool"]
    # auto_execute=False ran nothing: no tool message was ever sent for Rome's question.
    assert [m["role"] for m in pending["messages"]] == ["user"]


@pytest.mark.parametrize("server", ["lollms_webui"], indirect=True)
def test_v1_generate_with_tools_on_lollms_webui_fails_in_one_line(server, tmp_path: Path) -> None:
    out = run("v1_tools.py", tmp_path, server)
    assert out[0] == (f"Response: [Error during generation: lollms-webui at {server.url} has no "
                      "tool-calling API; tools need the new LoLLMs server (port 9642), Ollama, "
                      "an OpenAI-compatible server or the embedded model]")
    assert out[1:] == ["Calls: []", "Results: []", "Rounds: 1", out[-1]]
    assert out[-1].startswith("Pending: None []")
    assert generations(server) == []  # refused before anything was sent


# ------------------------------------------------------------------ pictures, out of scope


def test_v0_dalle_lists_the_image_servers_models_as_services_and_draws(tmp_path: Path) -> None:
    srv = OpenAIServer(models=["dall-e-2", "dall-e-3"])
    srv.kind = "openai"
    with srv:
        out = run("v0_tti_dalle.py", tmp_path, srv, {"LOLLMS_CLIENT_TTI_HOST": srv.url + "/v1",
                                                      "OPENAI_API_KEY": "sk-loopback"})
        drawn = [r.json for r in srv.requests if r.path == "/v1/images/generations"]
    assert out == ["Services: dall-e-2, dall-e-3", "Picture: True bytes, PNG=True"]
    assert len(drawn) == 1  # the config's model and size, in OpenAI's words
    assert (drawn[0]["model"], drawn[0]["size"]) == ("dall-e-2", "256x256")
    assert drawn[0]["prompt"] == "A red fox in the snow"
    assert (tmp_path / "fox.png").read_bytes()[:8] == bytes.fromhex("89504e470d0a1a0a")


def test_v1_openai_tti_reads_base_url_api_key_and_model_from_its_config(tmp_path: Path) -> None:
    srv = OpenAIServer(models=["dall-e-2", "dall-e-3"])
    srv.kind = "openai"
    with srv:
        out = run("v1_tti_openai.py", tmp_path, srv, {"LOLLMS_CLIENT_TTI_HOST": srv.url + "/v1"})
        drawn = [r for r in srv.requests if r.path == "/v1/images/generations"]
    assert out == ["Image models: dall-e-2, dall-e-3", "Picture: True, PNG=True"]
    assert len(drawn) == 1 and drawn[0].headers["authorization"] == "Bearer sk-local-images"
    assert (drawn[0].json["model"], drawn[0].json["size"]) == ("dall-e-3", "1024x1024")


def test_a_split_discussion_carries_the_pictures_on_its_last_user_turn(tmp_path: Path) -> None:
    from lollms_magics import LollmsClient

    (tmp_path / "photo.png").write_bytes(tiny_png())
    with OllamaServer() as ollama:
        lc = LollmsClient(llm_binding_name="ollama", llm_binding_config={"host_address": ollama.url})
        answer = lc.generate_text("!@>user: Look.\n!@>assistant: Yes?\n!@>user: What colour is it?\n",
                                  images=[str(tmp_path / "photo.png")], split=True,
                                  system_prompt="You describe pictures.")
        sent = ollama.last_request.json["messages"]
    assert answer == "Echo: What colour is it?"
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[0]["content"] == "You describe pictures."
    assert [bool(m.get("images")) for m in sent] == [False, False, False, True]
    # 1.x's text processor is the client: its helpers are there too.
    assert lc.llm.tp.extract_code_blocks("```py\nx = 1\n```")[0]["content"] == "x = 1"


def test_the_embedded_model_refuses_pictures_in_one_line_error_dict(tmp_path: Path) -> None:
    from lollms_magics import LollmsClient

    (tmp_path / "photo.png").write_bytes(tiny_png())
    answer = LollmsClient("llamacpp").generate_text("Describe this.", images=[str(tmp_path / "photo.png")])
    assert isinstance(answer, dict) and answer["status"] is False
    assert "reads text only and cannot take images" in answer["error"] and "\n" not in answer["error"]


def test_update_llm_binding_load_model_and_the_context_size_change_the_next_call() -> None:
    from lollms_magics import LollmsClient

    with OllamaServer() as ollama, OpenAIServer() as openai:
        lc = LollmsClient(llm_binding_name="ollama", llm_binding_config={"host_address": ollama.url})
        assert lc.llm.load_model("vision-model:latest") is True
        assert lc.generate_text("Hi") == "Echo: Hi"
        assert ollama.last_request.json["model"] == "vision-model:latest"
        lc.update_llm_binding("openai", {"host_address": openai.url + "/v1", "model_name": "test-model",
                                         "ctx_size": 8192})
        assert (lc.binding_name, lc.llm.model_name, lc.get_ctx_size()) == ("openai", "test-model", 8192)
        assert lc.generate_text("Hello") == "Echo: Hello"
        assert openai.last_request.json["model"] == "test-model"
        assert lc.get_model_details()["host_address"] == openai.url + "/v1"
        with pytest.raises(ValueError, match="Failed to update LLM binding: trnasformers"):
            lc.update_llm_binding("trnasformers")


def test_a_discussion_holding_a_known_key_is_not_sent() -> None:
    from lollms_magics import LollmsClient

    with OllamaServer() as ollama:
        lc = LollmsClient("ollama", ollama.url, service_key="sk-this-is-a-secret-key-123456")
        answer = lc.generate_text("!@>user: my key is sk-this-is-a-secret-key-123456\n!@>assistant:",
                                  split=True)
        assert isinstance(answer, dict) and answer["status"] is False
        assert "sk-this-is-a-secret-key-123456" not in answer["error"]
        assert [r for r in ollama.requests if r.path == "/api/chat"] == []


@pytest.mark.parametrize("server", ["ollama"], indirect=True)
def test_v1_out_of_scope_calls_fail_in_one_line_saying_what_to_use(server, tmp_path: Path) -> None:
    out = run("v1_out_of_scope.py", tmp_path, server)
    speech = "lollms-magics has text and image bindings only"
    conversation = ("lc.ask(...) keeps a conversation in memory, "
                    "and %lollms history --export saves it to a file")
    assert out == [
        f"speech: generate_audio: not in lollms-magics (speech, TTS); {speech}",
        f"transcription: transcribe_audio: not in lollms-magics (speech to text, STT); {speech}",
        f"music: generate_music: not in lollms-magics (music, TTM); {speech}",
        f"video: generate_video: not in lollms-magics (video, TTV); {speech}",
        f"mcp: generate_with_mcp: not in lollms-magics (MCP); {MCP_INSTEAD}",
        "discussion: LollmsDiscussion: not in lollms-magics (discussions stored in a database); "
        + conversation,
        f"chat: chat: not in lollms-magics (discussions, LollmsDiscussion); {conversation}",
        "zoo: get_zoo: not in lollms-magics (the model zoo); lc.list_models() lists the server's models",
        "tool file: generate_with_tools: tool files (clock_tool.py) are not read here; give the functions "
        'themselves (a function, or {"name": ..., "callable": fn})',
        "tts=None stt=None",
    ]
    assert server.requests == []  # nothing was sent for any of them
