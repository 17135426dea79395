"""LollmsClient and MSG_TYPE: lollms-client's API on the loopback servers (and a MockTransport).

Callback semantics (False stops, None continues), the error dicts, both
spellings of sequential_summarize, the MSG_TYPE aliases, the constructor's
two spellings, tokens and the TTI wrapper.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from lollms_magics import ELF_GENERATION_FORMAT, MSG_TYPE, LollmsClient, Session, default_session
from lollms_magics.errors import AuthenticationError, LollmsMagicsWarning
from lollms_magics.tti.base import UnsupportedFeatureError
from tests.servers import LOLLMS_KEY

PROMPT = "What is the capital of France?"


class Recorder:
    """A callback that keeps what it was given and returns ``answer(n)`` for the n-th chunk."""

    def __init__(self, answer=lambda n: True):
        self.calls: list[tuple[str, MSG_TYPE]] = []
        self.answer = answer

    def __call__(self, chunk, msg_type, params=None, metadata=None):
        self.calls.append((chunk, msg_type))
        chunks = sum(1 for _, t in self.calls if t == MSG_TYPE.MSG_TYPE_CHUNK)
        return self.answer(chunks) if msg_type == MSG_TYPE.MSG_TYPE_CHUNK else True

    def of(self, kind: MSG_TYPE) -> list[str]:
        return [c for c, t in self.calls if t == kind]


# ------------------------------------------------------------------ MSG_TYPE and friends


def test_old_names_are_aliases_of_the_new_members_and_numbers_never_compare():
    assert MSG_TYPE.MSG_TYPE_FULL is MSG_TYPE.MSG_TYPE_CONTENT
    assert MSG_TYPE.MSG_TYPE_FULL_INVISIBLE_TO_AI is MSG_TYPE.MSG_TYPE_CONTENT_INVISIBLE_TO_AI
    assert MSG_TYPE.MSG_TYPE_FULL_INVISIBLE_TO_USER is MSG_TYPE.MSG_TYPE_CONTENT_INVISIBLE_TO_USER
    assert MSG_TYPE["MSG_TYPE_FULL"].name == "MSG_TYPE_CONTENT"
    assert MSG_TYPE.MSG_TYPE_CHUNK != 0  # a plain Enum: compare members, never numbers
    # The newest numbering (lollms-client >= 0.21): the thought types sit before EXCEPTION.
    assert (MSG_TYPE.MSG_TYPE_THOUGHT_CHUNK.value, MSG_TYPE.MSG_TYPE_EXCEPTION.value,
            MSG_TYPE.MSG_TYPE_STEP.value, MSG_TYPE.MSG_TYPE_CONTEXT_COMPRESSION.value) == (4, 6, 9, 31)
    assert len(MSG_TYPE) == 32  # aliases are not members of their own


def test_the_course_import_paths_give_the_same_objects():
    import lollms_magics
    from lollms_magics import lollms_types

    assert lollms_types.MSG_TYPE is lollms_magics.MSG_TYPE is MSG_TYPE
    assert lollms_types.ELF_GENERATION_FORMAT is ELF_GENERATION_FORMAT
    assert lollms_magics.LollmsClient is LollmsClient
    assert ELF_GENERATION_FORMAT.from_string("Ollama") is ELF_GENERATION_FORMAT.OLLAMA
    assert ELF_GENERATION_FORMAT.OLLAMA.binding_name() == "ollama"
    assert str(ELF_GENERATION_FORMAT.LOLLMS) == "LOLLMS"
    with pytest.raises(ValueError, match="unknown generation format 'gpt'"):
        ELF_GENERATION_FORMAT.from_string("gpt")


def test_the_course_imports_load_nothing_heavy():
    probe = (
        "import sys\n"
        "from lollms_magics.lollms_types import MSG_TYPE\n"
        "from lollms_magics import MSG_TYPE as M, ELF_GENERATION_FORMAT\n"
        "print(sorted(m for m in ('httpx', 'PIL', 'docling', 'llama_cpp', 'IPython') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ the client is a Session


def test_both_constructor_spellings_reach_the_same_server(lollms_webui_server):
    old = LollmsClient("lollms", lollms_webui_server.url, model_name="test-model")
    config = {"host_address": lollms_webui_server.url, "model_name": "test-model"}
    new = LollmsClient(llm_binding_name="lollms", llm_binding_config=config)
    for lc in (old, new):
        assert isinstance(lc, Session) and lc.session is lc
        assert (lc.binding_name, lc.host_address) == ("lollms", lollms_webui_server.url)
        assert (lc.binding.binding_name, lc.binding.host_address, lc.binding.model_name) == (
            "lollms", lollms_webui_server.url, "test-model")
        assert lc.llm.model_name == "test-model"
        assert lc.tti is None  # not asked for: no warning, no binding
        assert lc.generate_text(PROMPT) == f"Echo: {PROMPT}"
    assert [r.json["model_name"] for r in lollms_webui_server.requests_to("/lollms_generate")] == [
        "test-model", "test-model"]
    assert lollms_webui_server.requests_to("/lollms_generate")[0].json["stream"] is False


def test_a_client_made_default_is_the_session_of_the_magics(ollama_server):
    lc = LollmsClient("ollama", ollama_server.url).make_default()
    assert default_session() is lc
    answer = lc.ask("Hello there")  # a Session's own call, with its conversation
    assert answer.text == "Echo: Hello there"
    assert len(lc.history()) == 1
    assert lc.binding().name == "ollama"  # lc.binding stays callable, as Session.binding


def test_constructor_mistakes_fail_at_once():
    with pytest.raises(ValueError, match=r"Failed to create LLM binding 'trnasformers': no binding named"):
        LollmsClient("trnasformers")
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*hots_address"):
        LollmsClient(hots_address="http://localhost:9600")
    with pytest.raises(ValueError, match=r"Failed to create LLM binding 'ollama'.*check llm_binding_config"):
        LollmsClient(llm_binding_name="ollama", llm_binding_config={"no_such_setting": 1})


def test_an_image_binding_that_cannot_be_made_leaves_tti_none_with_a_warning():
    # diffusers runs the model inside lollms-client's process: there is no such binding here.
    with pytest.warns(LollmsMagicsWarning, match=r"no TTI binding: 'diffusers' could not be made "
                      r"\(.*the image bindings are lollms, openai \(dalle\), a1111, comfyui\); "
                      r"lc.tti is None"):
        lc = LollmsClient(tti_binding_name="diffusers")
    assert lc.tti is None


def test_the_environment_points_a_script_at_another_backend(ollama_server, monkeypatch):
    monkeypatch.setenv("LOLLMS_CLIENT_BINDING", "ollama")
    monkeypatch.setenv("LOLLMS_CLIENT_HOST", ollama_server.url)
    lc = LollmsClient(host_address="http://localhost:9600")  # what the course's script says
    assert (lc.binding_name, lc.host_address) == ("ollama", ollama_server.url)
    assert lc.generate_text(PROMPT) == f"Echo: {PROMPT}"


# ------------------------------------------------------------------ generate_text and the callback


def test_chunks_reach_the_callback_as_they_arrive_and_the_text_is_returned(ollama_server):
    cb = Recorder()
    lc = LollmsClient("ollama", ollama_server.url, n_predict=100)
    text = lc.generate_text(PROMPT, streaming_callback=cb, temperature=0.6, system_prompt="Be brief.")
    assert text == f"Echo: {PROMPT}"
    assert "".join(cb.of(MSG_TYPE.MSG_TYPE_CHUNK)) == text
    assert len(cb.of(MSG_TYPE.MSG_TYPE_CHUNK)) > 3  # pieces, not one block
    body = ollama_server.last_request.json
    assert body["stream"] is True
    assert body["options"] == {"num_predict": 100, "temperature": 0.6}
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_false_stops_the_generation_and_returns_the_text_so_far(lollms_webui_server):
    lollms_webui_server.slow_pieces, lollms_webui_server.slow_delay = 300, 0.02
    cb = Recorder(lambda n: n < 3)
    lc = LollmsClient("lollms", lollms_webui_server.url, model_name="slow")
    started = time.monotonic()
    text = lc.generate_text(PROMPT, streaming_callback=cb)
    assert time.monotonic() - started < 3.0  # the whole answer would take 6 s
    pieces = cb.of(MSG_TYPE.MSG_TYPE_CHUNK)
    assert len(pieces) == 3 and text == "".join(pieces)
    assert (" tok" * 100).startswith(text) and len(text) <= 12
    assert lollms_webui_server.wait_for_disconnect(3.0)  # the HTTP stream was closed


def test_none_continues_and_zero_stops(openai_server):
    lc = LollmsClient("openai", openai_server.url, model_name="test-model")
    forgetful = Recorder(lambda n: None)
    assert lc.generate_text(PROMPT, streaming_callback=forgetful) == f"Echo: {PROMPT}"
    assert "".join(forgetful.of(MSG_TYPE.MSG_TYPE_CHUNK)) == f"Echo: {PROMPT}"
    zero = Recorder(lambda n: 0)
    text = lc.generate_text(PROMPT, streaming_callback=zero)
    assert len(zero.of(MSG_TYPE.MSG_TYPE_CHUNK)) == 1 and text == zero.of(MSG_TYPE.MSG_TYPE_CHUNK)[0]


def test_the_constructor_callback_is_the_default_and_stream_false_sends_no_chunks(ollama_server):
    cb = Recorder()
    lc = LollmsClient("ollama", ollama_server.url, streaming_callback=cb)
    assert lc.generate_text("one") == "Echo: one"
    assert "".join(cb.of(MSG_TYPE.MSG_TYPE_CHUNK)) == "Echo: one"
    before = len(cb.calls)
    assert lc.generate_text("two", stream=False) == "Echo: two"
    assert len(cb.calls) == before
    assert ollama_server.last_request.json["stream"] is False


def test_reasoning_reaches_the_callback_as_thought_chunks(ollama_server):
    cb = Recorder()
    lc = LollmsClient("ollama", ollama_server.url, model_name="think")
    text = lc.generate_text(PROMPT, streaming_callback=cb)
    assert text == f"Echo: {PROMPT}"
    assert "".join(cb.of(MSG_TYPE.MSG_TYPE_THOUGHT_CHUNK)) == "The user wants an echo; "
    first_chunk = next(i for i, (_, t) in enumerate(cb.calls) if t == MSG_TYPE.MSG_TYPE_CHUNK)
    assert cb.calls[0][1] == MSG_TYPE.MSG_TYPE_THOUGHT_CHUNK and first_chunk > 0


def test_a_server_failure_is_an_error_dict_and_an_exception_message(lollms_webui_server):
    cb = Recorder()
    lc = LollmsClient("lollms", lollms_webui_server.url, model_name="server-error")
    result = lc.generate_text(PROMPT, streaming_callback=cb)
    message = f"lollms at {lollms_webui_server.url} failed: Model generation failed: server-error"
    assert result == {"status": False, "error": message, "message": message}
    assert cb.of(MSG_TYPE.MSG_TYPE_EXCEPTION) == [message]


def test_a_broken_stream_keeps_its_chunks_and_ends_in_an_error_dict(ollama_server):
    cb = Recorder()
    lc = LollmsClient("ollama", ollama_server.url, model_name="fail-midstream")
    result = lc.generate_text(PROMPT, streaming_callback=cb)
    assert isinstance(result, dict) and result["status"] is False
    assert "\n" not in result["error"] and result["error"] == cb.of(MSG_TYPE.MSG_TYPE_EXCEPTION)[0]
    assert len(cb.of(MSG_TYPE.MSG_TYPE_CHUNK)) == 3  # the pieces before the in-band error
    assert [t for _, t in cb.calls][-1] == MSG_TYPE.MSG_TYPE_EXCEPTION


def test_nothing_listening_is_an_error_dict_not_an_exception():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    lc = LollmsClient("ollama", dead)
    result = lc.generate_text(PROMPT)
    assert result["status"] is False and result["error"].startswith(f"cannot reach ollama at {dead}")
    models = lc.listModels()
    assert isinstance(models, dict) and models["error"] == result["error"]


def test_a_wrong_key_is_refused_without_showing_it(lollms_server):
    wrong = "lollms_wrong-key-0123456789abcdef"
    cb = Recorder()
    lc = LollmsClient("lollms", lollms_server.url, service_key=wrong)
    result = lc.generate_text(PROMPT, streaming_callback=cb)
    assert result["status"] is False and "401" in result["error"]
    assert wrong not in json.dumps(result) and wrong not in json.dumps(cb.calls, default=str)
    right = LollmsClient("lollms", lollms_server.url, service_key=LOLLMS_KEY)
    assert right.generate_text(PROMPT) == f"Echo: {PROMPT}"


def test_bad_options_and_images_are_error_dicts_sent_nowhere(ollama_server, tmp_path):
    lc = LollmsClient("ollama", ollama_server.url)
    bad = lc.generate_text(PROMPT, temperature="hot")
    assert bad["error"] == "option temperature takes a number, not 'hot'"
    missing = tmp_path / "nope.png"
    assert str(missing) in lc.generate_text(PROMPT, images=[str(missing)])["error"]
    assert lc.generate_text(PROMPT, n_threads=8) == f"Echo: {PROMPT}"  # lollms-client's extra: ignored
    assert len(ollama_server.requests_to("/api/chat")) == 1


# ------------------------------------------------------------------ models and tokens


def test_list_models_in_both_spellings(ollama_server, lollms_webui_server):
    ollama = LollmsClient("ollama", ollama_server.url)
    names = [m["model_name"] for m in ollama.listModels()]
    assert names == ["test-model:latest", "vision-model:latest"]
    assert ollama.list_models() == ollama.listModels() == ollama.binding.listModels()
    assert LollmsClient(host_address=lollms_webui_server.url).list_models() == [
        {"model_name": "test-model"}, {"model_name": "vision-model"}]


def test_tokens_from_the_lollms_servers(lollms_webui_server, lollms_server):
    for lc in (LollmsClient(host_address=lollms_webui_server.url),
               LollmsClient(host_address=lollms_server.url, service_key=LOLLMS_KEY)):
        tokens = lc.tokenize("the quick brown fox")
        assert len(tokens) == 4 == lc.count_tokens("the quick brown fox")
        assert lc.detokenize(tokens) == "the quick brown fox"
        assert lc.binding.detokenize(lc.binding.tokenize("a b")) == "a b"


def test_tokens_where_the_backend_has_no_tokenizer(ollama_server):
    lc = LollmsClient("ollama", ollama_server.url)
    with pytest.raises(UnsupportedFeatureError, match=r"ollama at .* cannot tokenize text"):
        lc.tokenize("hello")
    with pytest.raises(UnsupportedFeatureError, match="cannot detokenize"):
        lc.detokenize([1, 2])
    assert lc.count_tokens("x" * 40) == 14  # the estimate (three characters a token, rounded up)


# ------------------------------------------------------------------ sequential_summarize


ARTICLE = "\n\n".join(
    f"Paragraph {i}: the harbour of town {i} opened in {1800 + i} and shipped {i * 10} tons of salt. " * 6
    for i in range(1, 13)
)


def _reply(prompt: str) -> str:
    if "Write a summary of the whole document" in prompt:
        return "The harbours opened one by one and shipped salt."
    if "Merge these notes" in prompt:
        return "- Harbours shipped salt."
    part = prompt.split("Part ", 1)[1].split(" ", 1)[0] if "Part " in prompt else "?"
    return f"- Part {part} names a harbour and its salt."


def test_both_spellings_of_sequential_summarize_send_the_same_requests(lollms_webui_server):
    lollms_webui_server.reply = _reply
    lc = LollmsClient(host_address=lollms_webui_server.url)
    course = lc.sequential_summarize(
        full_text_content=ARTICLE, instruction_prompt="List each harbour.",
        output_format_prompt="One sentence.", context_size=1024, chunk_size=200, debug=False,
    )
    course_bodies = [r.json["prompt"] for r in lollms_webui_server.requests_to("/lollms_generate")]
    lollms_webui_server.reset()
    steps = Recorder()
    client = lc.sequential_summarize(
        ARTICLE, "List each harbour.", chunk_processing_output_format="markdown",
        final_memory_processing_prompt="One sentence.", final_output_format="markdown", ctx_size=1024,
        chunk_size=200, overlap=0, bootstrap_chunk_size=100, bootstrap_steps=1, callback=steps,
    )
    client_bodies = [r.json["prompt"] for r in lollms_webui_server.requests_to("/lollms_generate")]
    assert course == client == "The harbours opened one by one and shipped salt."
    assert course_bodies == client_bodies and len(client_bodies) >= 4  # several chunks, then the end
    assert all("List each harbour." in body for body in client_bodies[:-1])
    assert "One sentence." in client_bodies[-1]
    step_lines = steps.of(MSG_TYPE.MSG_TYPE_STEP)
    chunks = len(client_bodies) - 1 - sum("Merge these notes" in b for b in client_bodies)
    assert [s for s in step_lines if s.startswith("Processing chunk")] == [
        f"Processing chunk {i}/{chunks}..." for i in range(1, chunks + 1)]
    assert step_lines[-1] == "Aggregating final summary..."
    assert "".join(steps.of(MSG_TYPE.MSG_TYPE_CHUNK)) == client  # the final summary, streamed
    assert lc.last_summary is not None and lc.last_summary.calls == len(client_bodies)


def test_false_at_a_step_stops_the_summary(lollms_webui_server):
    lollms_webui_server.reply = _reply
    lc = LollmsClient(host_address=lollms_webui_server.url)
    stop = Recorder()
    stop.answer = lambda n: True

    def callback(chunk, msg_type, *extra):
        stop(chunk, msg_type)
        return not chunk.startswith("Processing chunk 2/")

    text = lc.sequential_summarize(ARTICLE, ctx_size=1024, chunk_size=200, callback=callback)
    assert text == "Error: stopped by the callback"
    assert len(lollms_webui_server.requests_to("/lollms_generate")) == 2
    assert stop.of(MSG_TYPE.MSG_TYPE_EXCEPTION) == ["stopped by the callback"]


def test_sequential_summarize_returns_errors_as_text():
    lc = LollmsClient("ollama", "http://127.0.0.1:9")
    assert lc.sequential_summarize(text=ARTICLE, ctx_size=1024, chunk_size=200).startswith(
        "Error: cannot reach ollama at http://127.0.0.1:9")
    with pytest.raises(TypeError, match="got both 'full_text_content' and 'text'"):
        lc.sequential_summarize(ARTICLE, full_text_content=ARTICLE)
    with pytest.raises(TypeError, match="unexpected keyword argument 'chunksize'"):
        lc.sequential_summarize(ARTICLE, chunksize=10)


# ------------------------------------------------------------------ lc.tti


def test_tti_on_lollms_webui_takes_the_client_id_from_the_key_or_the_call(lollms_webui_server):
    with_key = LollmsClient(host_address=lollms_webui_server.url, tti_binding_name="lollms",
                            service_key="loopback-client-id")
    assert [s["name"] for s in with_key.tti.list_services()] == ["diffusers", "dall-e"]
    settings = with_key.tti.get_settings()
    assert [s["name"] for s in settings] == ["model", "steps"]
    settings[1]["value"] = 8
    assert with_key.tti.set_settings(settings) is True
    assert lollms_webui_server.tti_settings[1]["value"] == 8
    image = with_key.tti.generate_image("an owl", negative_prompt="blurry", width=64, height=32)
    assert image.startswith(b"\xff\xd8\xff")  # lollms-webui sends JPEG
    assert lollms_webui_server.last_request.json == {
        "prompt": "an owl", "negative_prompt": "blurry", "width": 64, "height": 32}

    # The client is a Session: its image default is the same server (what %lollms image uses).
    made = with_key.image("a cat", width=48, height=48)
    assert made.sizes == [(48, 48)] and lollms_webui_server.last_request.json["prompt"] == "a cat"
    assert with_key.image_binding() is with_key.tti.binding

    without = LollmsClient(host_address=lollms_webui_server.url, tti_binding_name="lollms")
    with pytest.raises(AuthenticationError, match="needs a client_id"):
        without.tti.list_services()
    assert len(without.tti.list_services(client_id="loopback-client-id")) == 2


def test_tti_on_the_new_server_answers_what_lollms_client_answers(lollms_server):
    lc = LollmsClient(host_address=lollms_server.url, service_key=LOLLMS_KEY, tti_binding_name="lollms")
    assert lc.tti.get_settings() == {}
    assert lc.tti.set_settings([]) is False
    assert [m["model_name"] for m in lc.tti.list_models()] == ["diffusers/sdxl-turbo", "dalle/dall-e-3"]
    assert lc.tti.generate_image("an owl", width=256, height=256).startswith(b"\x89PNG")
    assert json.loads(lollms_server.last_request.body)["size"] == "256x256"


def test_tti_on_a1111_by_its_own_host(a1111_server):
    lc = LollmsClient(tti_binding_name="a1111", tti_binding_config={"host_address": a1111_server.url})
    assert lc.tti.list_services() == []  # A1111 has no services to list
    image = lc.tti.generate_image("an owl", width=64, height=64, seed=3)
    assert image.startswith(b"\x89PNG")
    assert a1111_server.requests_to("/sdapi/v1/txt2img")[-1].json["seed"] == 3


def test_mock_transport_reaches_the_binding_through_llm_binding_config():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        assert json.loads(request.content)["stream"] is False  # no callback: one whole answer
        answer = {"message": {"role": "assistant", "content": "Paris"}, "done": True, "done_reason": "stop"}
        return httpx.Response(200, json=answer)

    lc = LollmsClient(llm_binding_name="ollama", llm_binding_config={
        "host_address": "http://ollama.test:11434", "model_name": "m",
        "transport": httpx.MockTransport(handler)})
    assert lc.generate_text(PROMPT) == "Paris"
    assert seen == ["/api/chat"]


@pytest.mark.model
def test_tokens_round_trip_on_the_embedded_model():
    lc = LollmsClient("llamacpp")
    tokens = lc.tokenize("Hello world, the quick fox")
    assert len(tokens) == lc.count_tokens("Hello world, the quick fox") > 3
    assert lc.detokenize(tokens) == "Hello world, the quick fox"
    assert lc.binding.model_name == "SmolLM2-135M-Instruct.Q4_1"
    lc.close()


def test_lollms_client_names_that_pin_the_lollms_protocol(lollms_webui_server, lollms_server):
    webui = LollmsClient("lollms_webui", lollms_webui_server.url, personality=2)
    assert webui.generate_text(PROMPT) == f"Echo: {PROMPT}"
    assert [r.path for r in lollms_webui_server.requests] == ["/lollms_generate"]  # no probing
    assert lollms_webui_server.last_request.json["personality"] == 2
    chat = LollmsClient("lollms_chat", lollms_server.url, service_key=LOLLMS_KEY)
    assert chat.generate_text(PROMPT) == f"Echo: {PROMPT}"
    assert [r.path for r in lollms_server.requests][-1] == "/v1/chat/completions"
    assert chat.binding_name == "lollms_chat" and chat.binding().protocol == "v1"


def test_out_of_scope_classes_import_from_the_top_and_refuse_in_one_line():
    from lollms_magics import LollmsDataManager, LollmsDiscussion, LollmsPersonality
    from lollms_magics.errors import UnsupportedFeatureError

    for cls in (LollmsDiscussion, LollmsDataManager, LollmsPersonality):
        with pytest.raises(UnsupportedFeatureError) as caught:
            cls()
        message = str(caught.value)
        assert "\n" not in message and cls.__name__ in message and "lollms-magics" in message
