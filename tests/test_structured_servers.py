"""Answers as data on each backend: the constraint it receives, its refusals, and end to end.

The loopback servers answer a request that asks for JSON with JSON that
follows the schema, as a real server's grammar makes its model do, and
refuse what the real servers refuse in their own words; the official
``openai`` and ``ollama`` clients are run against them to show it. The
embedded model and llama-cpp-python's own server are then asked for real.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import ollama
import openai
import pydantic
import pytest

from lollms_magics import Session, get_binding
from lollms_magics.bindings import llamacpp
from lollms_magics.core.structured import as_schema, ask_structured
from lollms_magics.errors import BadRequestError
from tests.conftest import require_embedded_model
from tests.servers import LOLLMS_KEY, OpenAIServer
from tests.test_llama_server import llama_server  # noqa: F401  (the module's server fixture)

SHORT = "name: str, year: int, tags: list[str], sentiment: positive|negative"
WIRE = as_schema(SHORT).wire
GOOD = '{"name": "Ada", "year": 1815, "tags": ["maths"], "sentiment": "positive"}'


def _chat_bodies(server: Any, path: str = "/v1/chat/completions") -> list[dict[str, Any]]:
    return [r.json for r in server.requests_to(path)]


def _no_wait(session: Session, name: str) -> None:
    """Retries of a 5xx without their backoff (llama-cpp-python refuses with a 500)."""
    session.binding(session.target(name))._sleep = lambda seconds: None  # type: ignore[attr-defined]


# -- what each backend receives -----------------------------------------------------------


def test_ollama_receives_the_schema_as_format(ollama_server) -> None:
    response = Session("ollama", model="test-model", host=ollama_server.url).ask("Ada, 1815", schema=SHORT)
    assert response.data == {"name": "Ada, 1815", "year": 2, "tags": ["Ada, 1815"], "sentiment": "positive"}
    body = ollama_server.last_request.json
    assert body["format"] == WIRE
    assert body["messages"][0]["role"] == "system" and "JSON Schema" in body["messages"][0]["content"]


def test_ollama_generate_api_receives_format_too(ollama_server) -> None:
    binding = get_binding("ollama", host=ollama_server.url, model="test-model", api="generate")
    assert ask_structured(binding, [{"role": "user", "content": "Ada"}], "name: str").data == {"name": "Ada"}
    assert ollama_server.requests_to("/api/generate")[-1].json["format"] == as_schema("name: str").wire


def test_openai_receives_a_strict_json_schema_response_format(openai_server) -> None:
    response = Session("openai", model="test-model", host=openai_server.url).ask("Ada", schema=SHORT)
    assert response.data["sentiment"] == "positive"
    assert openai_server.last_request.json["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": WIRE, "strict": True},
    }


def test_a_schema_strict_mode_cannot_take_goes_without_strict(openai_server) -> None:
    loose = {"title": "Person", "type": "object", "properties": {"name": {"type": "string"},
                                                                   "year": {"type": "integer"}},
             "required": ["name"]}  # year may be left out: OpenAI's strict mode would refuse it
    response = Session("openai", model="test-model", host=openai_server.url).ask("Ada", schema=loose)
    assert response.data == {"name": "Ada", "year": 1}
    assert openai_server.last_request.json["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "Person", "schema": loose},
    }
    assert len(_chat_bodies(openai_server)) == 1


def test_the_new_lollms_server_receives_response_format(lollms_server) -> None:
    session = Session("lollms", model="ollama/test-model", host=lollms_server.url, api_key=LOLLMS_KEY)
    assert session.ask("Ada", schema="name: str").data == {"name": "Ada"}
    assert lollms_server.last_request.json["response_format"]["json_schema"]["schema"] == as_schema(
        "name: str").wire


def test_lollms_webui_receives_instructions_only(lollms_webui_server) -> None:
    lollms_webui_server.reply = lambda prompt: '{"name": "Ada"}'
    response = Session("lollms", host=lollms_webui_server.url).ask("Ada", schema="name: str")
    assert response.data == {"name": "Ada"}
    body = lollms_webui_server.last_request.json
    assert "format" not in body and "response_format" not in body
    assert '"required":["name"]' in body["prompt"]


# -- refusals and what is remembered ----------------------------------------------------------


def test_a_server_refusing_json_schema_is_asked_with_json_object_and_remembered(openai_server) -> None:
    openai_server.refuse_formats = {"json_schema"}
    session = Session("openai", model="test-model", host=openai_server.url)
    first = session.ask("Ada", schema=SHORT)
    assert first.data["name"] == "Ada"
    kinds = [b["response_format"] for b in _chat_bodies(openai_server)]
    assert kinds == [
        {"type": "json_schema", "json_schema": {"name": "answer", "schema": WIRE, "strict": True}},
        {"type": "json_object", "schema": WIRE},
    ]
    assert "the server refused response_format json_schema; asked with json_object+schema" in first.notes[0]
    session.ask("Ada again", schema=SHORT).text  # noqa: B018
    assert _chat_bodies(openai_server)[-1]["response_format"] == {"type": "json_object", "schema": WIRE}
    assert len(_chat_bodies(openai_server)) == 3  # the refusal was not met again

    other = OpenAIServer().start()  # another host: asked with the strongest again
    try:
        Session("openai", model="test-model", host=other.url).ask("Ada", schema=SHORT).text  # noqa: B018
        assert _chat_bodies(other)[0]["response_format"]["type"] == "json_schema"
    finally:
        other.stop()


def test_a_server_refusing_every_format_is_asked_without_one(openai_server) -> None:
    openai_server.refuse_formats = {"json_schema", "json_object+schema", "json_object"}
    openai_server.reply = lambda prompt: f"Here: {GOOD}"  # what the instructions alone gave
    response = Session("openai", model="test-model", host=openai_server.url).ask("Ada", schema=SHORT)
    assert response.data == json.loads(GOOD)
    bodies = _chat_bodies(openai_server)
    assert [b.get("response_format", {}).get("type") for b in bodies] == [
        "json_schema", "json_object", "json_object", None]
    assert "schema" not in bodies[2]["response_format"]
    assert "JSON Schema" in bodies[-1]["messages"][0]["content"]  # the instructions stay


def test_llama_cpp_python_style_refusal_is_a_500_that_is_understood(openai_server) -> None:
    openai_server.refuse_formats = {"json_schema"}
    openai_server.refusal_style = "llama-cpp-python"
    session = Session("openai", model="test-model", host=openai_server.url)
    _no_wait(session, "openai")
    assert session.ask("Ada", schema="name: str").data == {"name": "Ada"}
    kinds = [b["response_format"]["type"] for b in _chat_bodies(openai_server)]
    assert kinds == ["json_schema"] * 3 + ["json_object"]  # a 5xx is retried first, as any 5xx


def test_a_400_that_is_not_about_response_format_is_an_error(openai_server) -> None:
    openai_server.fail_next = [(400, {})]
    session = Session("openai", model="test-model", host=openai_server.url)
    with pytest.raises(BadRequestError, match="Planned failure 400"):
        session.ask("Ada", schema="name: str").text  # noqa: B018
    session.ask("Ada", schema="name: str").text  # noqa: B018
    assert _chat_bodies(openai_server)[-1]["response_format"]["type"] == "json_schema"  # nothing remembered


def test_an_old_ollama_refusing_a_schema_is_asked_for_json_and_remembered(ollama_server) -> None:
    ollama_server.refuse_formats = {"schema"}
    session = Session("ollama", model="test-model", host=ollama_server.url)
    ollama_server.json_reply = lambda prompt, schema: '{"name": "Ada"}'
    response = session.ask("Ada", schema="name: str")
    assert response.data == {"name": "Ada"}
    formats = [b["format"] for b in _chat_bodies(ollama_server, "/api/chat")]
    assert formats == [as_schema("name: str").wire, "json"]
    assert response.notes[0] == (
        'the server refused format schema; asked with format "json" (remembered for this server)')
    session.ask("Ada", schema="name: str").text  # noqa: B018
    assert _chat_bodies(ollama_server, "/api/chat")[-1]["format"] == "json"


def test_a_constrained_answer_cut_at_its_length_is_repaired(openai_server) -> None:
    session = Session("openai", model="test-model", host=openai_server.url)
    response = session.ask("Ada", schema="name: str", n_predict=3)  # 3 pieces of JSON: cut
    with pytest.raises(Exception, match=r"the answer is not valid JSON"):
        response.data  # noqa: B018
    assert len(_chat_bodies(openai_server)) == 2  # the repair was asked for, with the same constraint
    assert _chat_bodies(openai_server)[1]["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize("name", ["openai", "ollama"])
def test_a_whole_answer_is_read_as_data_too(name: str, openai_server, ollama_server) -> None:
    server = openai_server if name == "openai" else ollama_server
    response = Session(name, model="test-model", host=server.url).ask("Ada", schema="name: str", stream=False)
    assert response.data == {"name": "Ada"}
    assert server.last_request.json["stream"] is False


# -- the loopback servers are faithful to the official clients ------------------------------------


class Person(pydantic.BaseModel):
    name: str
    year: int


def test_openai_sdk_parse_gets_its_model_from_the_loopback(openai_server) -> None:
    client = openai.OpenAI(base_url=openai_server.url + "/v1", api_key="sk-x", max_retries=0, timeout=5.0)
    completion = client.chat.completions.parse(
        model="test-model", messages=[{"role": "user", "content": "Ada Lovelace"}], response_format=Person)
    assert completion.choices[0].message.parsed == Person(name="Ada Lovelace", year=2)
    sent = openai_server.last_request.json["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True


def test_openai_sdk_streams_a_json_object_answer(openai_server) -> None:
    client = openai.OpenAI(base_url=openai_server.url + "/v1", api_key="sk-x", max_retries=0, timeout=5.0)
    stream = client.chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": "answer in json"}],
        response_format={"type": "json_object"}, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert json.loads(text) == {"answer": "Echo: answer in json"}


def test_openai_sdk_sees_the_refusals(openai_server) -> None:
    client = openai.OpenAI(base_url=openai_server.url + "/v1", api_key="sk-x", max_retries=0, timeout=5.0)
    user = [{"role": "user", "content": "no magic word"}]
    with pytest.raises(openai.BadRequestError) as no_json_word:
        client.chat.completions.create(
            model="test-model", messages=user, response_format={"type": "json_object"})
    assert no_json_word.value.param == "messages"
    openai_server.refuse_formats = {"json_schema"}
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.parse(model="test-model", messages=user, response_format=Person)
    assert refused.value.param == "response_format" and "json_schema" in refused.value.message
    openai_server.refusal_style = "llama-cpp-python"
    with pytest.raises(openai.InternalServerError, match="response_format"):
        client.chat.completions.parse(model="test-model", messages=user, response_format=Person)


def test_ollama_client_gets_json_for_a_format(ollama_server) -> None:
    client = ollama.Client(host=ollama_server.url, timeout=5.0)
    reply = client.chat(model="test-model", messages=[{"role": "user", "content": "Ada"}],
                        format=Person.model_json_schema())
    assert Person.model_validate_json(reply.message.content) == Person(name="Ada", year=1)
    reply = client.chat(model="test-model", messages=[{"role": "user", "content": "Ada"}], format="json")
    assert json.loads(reply.message.content) == {"answer": "Echo: Ada"}
    ollama_server.refuse_formats = {"schema"}
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(model="test-model", messages=[{"role": "user", "content": "Ada"}],
                    format=Person.model_json_schema())
    assert refused.value.status_code == 400 and "format" in refused.value.error


# -- end to end: the embedded model and llama-cpp-python's server --------------------------------------

SMALL = "name: str, year: int"
TEXT = "Ada Lovelace was born in 1815."


@pytest.mark.model
def test_the_embedded_model_answers_under_the_schema_grammar(monkeypatch: pytest.MonkeyPatch) -> None:
    require_embedded_model()
    binding = llamacpp.LlamaCppBinding()
    llama = binding.load()
    seen: list[Any] = []
    real = llama.create_chat_completion

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("response_format"))
        return real(*args, **kwargs)

    monkeypatch.setattr(llama, "create_chat_completion", spy)
    response = ask_structured(binding, [{"role": "user", "content": f"Extract the person: {TEXT}"}], SMALL,
                              n_predict=60, temperature=0, seed=1)
    data = response.data
    assert set(data) == {"name", "year"} and isinstance(data["name"], str) and isinstance(data["year"], int)
    assert len(response.attempts) == 1  # the grammar made the first answer fit
    assert seen == [{"type": "json_object", "schema": as_schema(SMALL).wire}]


@pytest.mark.model
def test_a_schema_answer_of_the_embedded_model_replays_keyed_on_its_schema(tmp_path) -> None:
    from lollms_magics import replay
    from lollms_magics.errors import NotRecordedError

    require_embedded_model()
    path = tmp_path / "schema.jsonl"
    replay.record(path)
    try:
        live = Session("llamacpp").ask(TEXT, schema=SMALL, n_predict=60, temperature=0, seed=1).data
    finally:
        replay.stop()
    replay.replay(path)
    try:
        assert Session("llamacpp").ask(TEXT, schema=SMALL, n_predict=60, temperature=0, seed=1).data == live
        with pytest.raises(NotRecordedError):
            Session("llamacpp").ask(TEXT, schema="name: str", n_predict=60, temperature=0, seed=1).text  # noqa: B018
    finally:
        replay.stop()


@pytest.mark.model
@pytest.mark.server
def test_llama_cpp_python_server_answers_under_its_schema(llama_server: str) -> None:  # noqa: F811
    session = Session("openai", model="smollm2", host=llama_server)
    _no_wait(session, "openai")
    response = session.ask(f"Extract the person: {TEXT}", schema=SMALL, n_predict=60, temperature=0, seed=1)
    data = response.data
    assert set(data) == {"name", "year"} and isinstance(data["year"], int)
    assert len(response.attempts) == 1
    refusal = "refused response_format json_schema; asked with json_object+schema"
    assert any(refusal in note for note in response.notes)
    # The loopback's imitation of that refusal is the real one.
    asked = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    real = httpx.post(llama_server + "/chat/completions", timeout=30, json={
        "model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1,
        "response_format": asked})
    with OpenAIServer() as fake:
        fake.refuse_formats, fake.refusal_style = {"json_schema"}, "llama-cpp-python"
        imitation = httpx.post(fake.url + "/v1/chat/completions", timeout=5, json={
            "model": "test-model", "messages": [{"role": "user", "content": "hi"}],
            "response_format": asked})
    assert imitation.status_code == real.status_code == 500
    first_line = real.json()["error"]["message"].split("\n\n")[0]
    assert imitation.json()["error"]["message"].split("\n\n")[0] == first_line
    assert {k: v for k, v in imitation.json()["error"].items() if k != "message"} == {
        k: v for k, v in real.json()["error"].items() if k != "message"}

