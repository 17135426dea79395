"""Answers as data: schemas from what users write, JSON found in answers, the repair, the magic.

The backends' constraints (``format``, ``response_format``, the embedded
model's grammar) are tested in ``test_structured_servers.py``; here the
answers come from the legacy LoLLMs server, which has none, so everything
rests on the instructions, the extraction and the one repair.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Literal, Optional, TypedDict

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from lollms_magics import LollmsClient, Session
from lollms_magics.core.structured import AnswerProblem, as_schema, find_json, read_data
from lollms_magics.errors import InvalidOptionError, LollmsMagicsWarning, StructuredOutputError
from tests.shell import magics_shell

SHORT = "name: str, year: int, tags: list[str], sentiment: positive|negative"
GOOD = '{"name": "Ada", "year": 1815, "tags": ["maths"], "sentiment": "positive"}'
BAD = '{"name": "Ada", "year": "nineteen", "tags": ["maths"], "sentiment": "positive"}'
NINETEEN = "year: 'nineteen' is not of type 'integer'"  # what is wrong with BAD
REPAIR = "That answer cannot be used"  # how the repair request begins (core/structured.py)


# -- schemas from what users write ----------------------------------------------------


def test_the_short_form_gives_the_json_schema_it_reads_as() -> None:
    spec = as_schema(
        "name: str, year: int?, tags: list[str], sentiment: positive|negative, 'first name': str, "
        "author: {name: str, born: int}, score: 1|2|3, ok: bool, ratio: float"
    )
    closed = {"additionalProperties": False}
    assert spec.json_schema == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "year": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "sentiment": {"type": "string", "enum": ["positive", "negative"]},
            "first name": {"type": "string"},
            "author": {"type": "object",
                       "properties": {"name": {"type": "string"}, "born": {"type": "integer"}},
                       "required": ["name", "born"], **closed},
            "score": {"type": "integer", "enum": [1, 2, 3]},
            "ok": {"type": "boolean"},
            "ratio": {"type": "number"},
        },
        "required": ["name", "year", "tags", "sentiment", "first name", "author", "score", "ok", "ratio"],
        **closed,
    }
    assert spec.fields == list(spec.json_schema["required"])


def test_brackets_ask_for_a_list_of_objects_inside_an_object() -> None:
    spec = as_schema("[name: str, year: int]")
    item = {"type": "object", "properties": {"name": {"type": "string"}, "year": {"type": "integer"}},
            "required": ["name", "year"], "additionalProperties": False}
    assert spec.json_schema == {"type": "array", "items": item}
    assert spec.fields == []
    # OpenAI's strict mode takes objects only: the model is asked for {"items": [...]}.
    assert spec.wire == {"type": "object", "properties": {"items": {"type": "array", "items": item}},
                         "required": ["items"], "additionalProperties": False}
    assert read_data('{"items": [{"name": "Ada", "year": 1815}]}', spec) == [{"name": "Ada", "year": 1815}]
    assert read_data('[{"name": "Ada", "year": 1815}]', spec) == [{"name": "Ada", "year": 1815}]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name", "field 'name' needs a type, as in name: str"),
        ("name: strr", "unknown type 'strr'"),
        ("name: str,, year: int", "a field name expected before ','"),
        ("tags: list[str", "it ends where ']' was expected"),
        ("name: str, name: int", "field 'name' is given twice"),
        ("name: str year: int", "',' expected before 'year'"),
    ],
)
def test_a_bad_short_form_is_refused_in_one_line_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        as_schema(text)
    message = str(caught.value)
    assert problem in message and "\n" not in message
    assert message.startswith(f"cannot read the schema {text!r}")


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"name": "str", "year": "int"}, "this dict is not a JSON Schema"),
        ({"type": "objet"}, "not a valid JSON Schema: type: 'objet' is not one of"),
        (42, "not int"),
    ],
)
def test_what_is_not_a_schema_is_refused_in_one_line(spec: object, problem: str) -> None:
    with pytest.raises(InvalidOptionError, match=problem) as caught:
        as_schema(spec)
    assert "\n" not in str(caught.value)


@dataclass
class Book:
    title: str
    year: Optional[int]  # noqa: UP045  (the spelling many users have)
    genre: Literal["novel", "essay"]
    tags: list[str] = field(default_factory=list)


class Movie(TypedDict):
    title: str
    minutes: int
    books: list[Book]


def test_dataclasses_and_typeddicts_become_closed_objects() -> None:
    book = {
        "title": "Book", "type": "object",
        "properties": {
            "title": {"type": "string"},
            "year": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "genre": {"enum": ["novel", "essay"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["title", "year", "genre"],  # tags has a default
        "additionalProperties": False,
    }
    assert as_schema(Book).json_schema == book
    assert as_schema(Book).name == "Book"
    movie = as_schema(Movie)
    assert movie.json_schema["properties"]["books"] == {"type": "array", "items": book}
    assert movie.json_schema["required"] == ["title", "minutes", "books"]
    assert movie.fields == ["title", "minutes", "books"]


def test_a_class_with_model_json_schema_is_asked_for_its_schema() -> None:
    class Fake:  # what pydantic models offer, without needing pydantic
        @classmethod
        def model_json_schema(cls) -> dict:
            return {"title": "Fake Thing", "type": "object", "properties": {"x": {"type": "integer"}},
                    "required": ["x"]}

    spec = as_schema(Fake)
    assert spec.json_schema["properties"] == {"x": {"type": "integer"}}
    assert spec.name == "Fake_Thing"  # a name OpenAI's json_schema.name accepts


def test_a_pydantic_model_works_when_the_user_has_pydantic() -> None:
    pydantic = pytest.importorskip("pydantic")

    class City(pydantic.BaseModel):
        name: str
        population: int

    spec = as_schema(City)
    assert spec.fields == ["name", "population"]
    assert read_data('{"name": "Lyon", "population": 522000}', spec) == {"name": "Lyon", "population": 522000}
    with pytest.raises(AnswerProblem, match="population: 'many' is not of type 'integer'"):
        read_data('{"name": "Lyon", "population": "many"}', spec)


# -- JSON in answers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Here you are:\n```json\n{"a": 1}\n```\nAnything else?', {"a": 1}),
        ('```\n[1, 2]\n```', [1, 2]),
        ('Sure! {"a": {"b": "a } in a string"}} and then [1]', {"a": {"b": "a } in a string"}}),
        ('The result is {not json} but this is: {"a": [1, {"b": null}]}.', {"a": [1, {"b": None}]}),
        ('```json\n{"a": 1}', {"a": 1}),  # a fence never closed (the answer hit its length)
    ],
)
def test_json_is_found_in_fences_and_prose(answer: str, value: object) -> None:
    assert find_json(answer) == value


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("", "the answer is empty"),
        ("I cannot help with that.", "the answer holds no JSON"),
        ('{"name": "Ada", "year": 18',
         "the answer is not valid JSON (Expecting ',' delimiter at line 1, column 27)"),
    ],
)
def test_an_answer_without_json_says_why(answer: str, problem: str) -> None:
    with pytest.raises(AnswerProblem) as caught:
        find_json(answer)
    assert str(caught.value) == problem


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (BAD, "year: 'nineteen' is not of type 'integer'"),
        ('{"name": "Ada", "year": 1815, "tags": ["maths"]}', "'sentiment' is a required property"),
        ('{"name": "Ada", "year": 1815, "tags": [3], "sentiment": "positive"}',
         "tags[0]: 3 is not of type 'string'"),
        ('{"name": "Ada", "year": 1815, "tags": [], "sentiment": "meh"}',
         "sentiment: 'meh' is not one of ['positive', 'negative']"),
    ],
)
def test_a_mismatch_names_the_field_that_failed(answer: str, problem: str) -> None:
    with pytest.raises(AnswerProblem) as caught:
        read_data(answer, as_schema(SHORT))
    assert str(caught.value) == f"the answer does not match the schema: {problem}"


def test_a_nullable_field_is_not_blamed_for_not_being_null() -> None:
    expected = r"^the answer does not match the schema: year: 'x' is not of type 'integer'$"
    with pytest.raises(AnswerProblem, match=expected):
        read_data('{"year": "x"}', as_schema("year: int?"))
    assert read_data('{"year": null}', as_schema("year: int?")) == {"year": None}


# -- Session.ask on a backend with no constraint --------------------------------------


@pytest.fixture
def webui(lollms_webui_server):
    """The legacy LoLLMs server, answering each prompt as ``answers(prompt)`` says."""
    return lollms_webui_server


def _session(server) -> Session:
    return Session("lollms", host=server.url)


def test_the_schema_goes_in_the_instructions_and_prose_around_the_json_is_left(webui) -> None:
    webui.reply = lambda prompt: f"Of course! Here is the data:\n```json\n{GOOD}\n```\nHope it helps."
    response = _session(webui).ask("Ada Lovelace, 1815, maths, loved it", schema=SHORT)
    assert response.data == json.loads(GOOD)
    assert response.text.startswith("Of course!")  # the raw text stays
    sent = webui.last_request.json["prompt"]
    assert sent.startswith("!@>system: Answer with one JSON object and nothing else")
    assert json.dumps(as_schema(SHORT).wire, separators=(",", ":")) in sent
    assert len(webui.requests_to("/lollms_generate")) == 1


def test_an_answer_that_does_not_fit_is_sent_back_once_with_what_is_wrong(webui) -> None:
    webui.reply = lambda prompt: GOOD if prompt.startswith(REPAIR) else BAD
    response = _session(webui).ask("Ada Lovelace, 1815", schema=SHORT)
    assert response.data == json.loads(GOOD)
    assert response.text == GOOD  # the text is the answer that fitted
    assert [a.text for a in response.attempts] == [BAD, GOOD]
    second = webui.requests_to("/lollms_generate")[1].json["prompt"]
    assert f"!@>assistant: {BAD}" in second  # the model sees its answer, then what is wrong with it
    assert "year: 'nineteen' is not of type 'integer'" in second.rsplit("!@>user:", 1)[1]
    assert response.notes == ["asked again: the first answer did not fit (the answer does not match the "
                              "schema: year: 'nineteen' is not of type 'integer')"]


def test_an_answer_that_still_does_not_fit_fails_in_one_line_keeping_the_text(webui) -> None:
    webui.reply = lambda prompt: BAD
    response = _session(webui).ask("Ada Lovelace, 1815", schema=SHORT)
    with pytest.raises(StructuredOutputError) as caught:
        response.data  # noqa: B018
    assert str(caught.value) == f"the answer does not match the schema: {NINETEEN}"
    assert caught.value.partial_text == BAD
    assert response.text == BAD and response.error is caught.value and not response.done
    assert len(webui.requests_to("/lollms_generate")) == 2  # one repair, not more


def test_reading_the_stream_raises_at_its_end_after_the_text(webui) -> None:
    webui.reply = lambda prompt: "no idea"
    response = _session(webui).ask("?", schema="x: int")
    pieces: list[str] = []
    with pytest.raises(StructuredOutputError, match=r"^the answer holds no JSON$"):
        for piece in response:
            pieces.append(piece)
    assert "".join(pieces) == "no ideano idea"  # both attempts streamed; .text is the last one's
    assert response.text == "no idea"


def test_a_bad_schema_fails_before_any_request(webui) -> None:
    with pytest.raises(InvalidOptionError):
        _session(webui).ask("hello", schema="name")
    assert webui.requests_to("/lollms_generate") == []


def test_a_stop_during_the_answer_stops_it_without_a_repair(openai_server) -> None:
    openai_server.json_reply = lambda prompt, schema: '{"x": ' + " " * 400 + "1}"  # many pieces
    response = Session("openai", host=openai_server.url, model="test-model").ask("?", schema="x: int")
    for _ in response:
        response.cancel()
    assert response.interrupted and not response.done and response.finish_reason == "cancelled"
    assert response.error is None and response.data is None
    assert len(openai_server.requests_to("/v1/chat/completions")) == 1


# -- the magic --------------------------------------------------------------------------


@pytest.fixture
def ip(lollms_webui_server, monkeypatch):
    with magics_shell(monkeypatch, session=Session("lollms", host=lollms_webui_server.url)) as shell:
        yield shell
    for name in ("people", "Book", "spec", "row"):
        shell.user_ns.pop(name, None)


def test_the_magic_puts_data_in_the_variable_and_shows_a_table(ip, lollms_webui_server, monkeypatch) -> None:
    # The plain table, as in a kernel where pandas was never imported (another test may have).
    monkeypatch.delitem(__import__("sys").modules, "pandas", raising=False)
    rows = [{"name": "Ada <Lovelace>", "year": 1815}, {"name": "Alan", "year": 1912}]
    lollms_webui_server.reply = lambda prompt: json.dumps({"items": rows})
    with capture_output() as cap:
        ip.run_cell_magic("lollms", '--schema "[name: str, year: int]" -o people', "Who wrote programs?")
    assert ip.user_ns["people"] == rows
    final = cap.outputs[-1].data
    assert "<th>name</th><th>year</th>" in final["text/html"]
    assert "<td>Ada &lt;Lovelace&gt;</td><td>1815</td>" in final["text/html"]
    assert json.loads(final["text/plain"]) == rows


def test_the_magic_takes_a_schema_from_a_variable(ip, lollms_webui_server, monkeypatch) -> None:
    # The plain table, as in a kernel where pandas was never imported (another test may have).
    monkeypatch.delitem(__import__("sys").modules, "pandas", raising=False)
    lollms_webui_server.reply = lambda prompt: '{"title": "Emma", "year": null, "genre": "novel"}'
    ip.user_ns["Book"] = Book
    with capture_output() as cap:
        ip.run_cell_magic("lollms", "--schema Book -o row", "Emma by Jane Austen")
    assert ip.user_ns["row"] == {"title": "Emma", "year": None, "genre": "novel"}
    assert "<td>Emma</td><td></td><td>novel</td>" in cap.outputs[-1].data["text/html"]


def test_nested_data_is_shown_as_json(ip, lollms_webui_server) -> None:
    lollms_webui_server.reply = lambda prompt: '{"author": {"name": "Austen"}}'
    with capture_output() as cap:
        ip.run_cell_magic("lollms", '--schema "author: {name: str}" -o row', "Emma")
    final = cap.outputs[-1].data
    assert "text/html" not in final
    assert final["text/markdown"].startswith('```json\n{\n  "author": {\n    "name": "Austen"')


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--schema Nope", "%lollms: --schema Nope: no variable of that name"),
        ('--schema "name: strr"', "%lollms: cannot read the schema 'name: strr': unknown type 'strr'"),
    ],
)
def test_a_bad_schema_in_the_magic_is_a_usage_error(ip, lollms_webui_server, line: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        ip.run_cell_magic("lollms", line, "hello")
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    assert lollms_webui_server.requests_to("/lollms_generate") == []


def test_the_magic_fails_the_cell_in_one_line_when_the_answer_never_fits(ip, lollms_webui_server) -> None:
    from lollms_magics.ipython.failure import CellFailure

    lollms_webui_server.reply = lambda prompt: BAD
    with capture_output(), pytest.raises(CellFailure) as caught:
        ip.run_cell_magic("lollms", f'--schema "{SHORT}" -o row', "Ada")
    assert f"the answer does not match the schema: {NINETEEN}" in str(caught.value)
    assert ip.user_ns["row"] == BAD  # the text received is kept, as for any failure


def test_help_explains_the_short_form(ip) -> None:
    with capture_output() as cap:
        ip.run_line_magic("lollms", "help")
    assert "--schema" in cap.stdout and "positive|negative|neutral" in cap.stdout


# -- LollmsClient.generate_structured_content -----------------------------------------


def test_generate_structured_content_returns_the_data(lollms_webui_server) -> None:
    lollms_webui_server.reply = lambda prompt: f"```json\n{GOOD}\n```"
    lc = LollmsClient("lollms", lollms_webui_server.url)
    schema = as_schema(SHORT).json_schema
    assert lc.generate_structured_content("Ada, 1815", schema=schema) == json.loads(GOOD)
    # lollms-client 1.7 also takes the schema as JSON text, and a dict of properties alone.
    assert lc.generate_structured_content("Ada", schema=json.dumps(schema)) == json.loads(GOOD)
    assert lc.generate_structured_content("Ada", schema=schema["properties"]) == json.loads(GOOD)


def test_generate_structured_content_takes_a_template(lollms_webui_server) -> None:
    fits, wrong = '{"name": "Ada", "age": 36}', '{"name": "Ada", "age": "36"}'
    answers = iter([fits, wrong, fits])
    lollms_webui_server.reply = lambda prompt: next(answers)
    lc = LollmsClient("lollms", lollms_webui_server.url)
    assert lc.generate_structured_content("Ada, died at 36", template={"name": "string", "age": 0}) == {
        "name": "Ada", "age": 36}
    # The template's types are checked: "36" is not an integer, so the model is asked again.
    assert lc.generate_structured_content("Ada", output_format='{"name": "", "age": "integer"}') == {
        "name": "Ada", "age": 36}


def test_generate_structured_content_gives_none_when_the_answer_never_fits(lollms_webui_server) -> None:
    lollms_webui_server.reply = lambda prompt: BAD
    lc = LollmsClient("lollms", lollms_webui_server.url)
    seen: list[tuple[str, object]] = []
    with pytest.warns(LollmsMagicsWarning, match="year: 'nineteen' is not of type 'integer'"):
        result = lc.generate_structured_content(
            "Ada", schema=as_schema(SHORT).json_schema, callback=lambda text, kind: seen.append((text, kind)))
    assert result is None
    assert seen[-1][0] == "the answer does not match the schema: year: 'nineteen' is not of type 'integer'"
    with pytest.raises(TypeError):
        lc.generate_structured_content("Ada", template=42)


def test_generate_structured_content_takes_the_schema_second_as_lollms_client_1_9_orders_it(
    lollms_webui_server,
) -> None:
    lollms_webui_server.reply = lambda prompt: GOOD
    lc = LollmsClient("lollms", lollms_webui_server.url)
    schema = as_schema(SHORT).json_schema
    # 1.9: (prompt, schema, images, system_prompt, max_retries, auto_continue_on_truncation)
    assert lc.generate_structured_content("Ada", schema, None, "You read notes.", 3,
                                          auto_continue_on_truncation=True) == json.loads(GOOD)
    sent = lollms_webui_server.last_request.json["prompt"]
    assert sent.startswith("!@>system: You read notes.") and '"sentiment"' in sent
    assert lc.generate_structured_content("Ada", json.dumps(schema)) == json.loads(GOOD)
    # 1.7: (prompt, images, schema): the images' place holds a list, the schema stays third.
    assert lc.generate_structured_content("Ada", [], schema) == json.loads(GOOD)


def test_generate_structured_content_pydantic_gives_an_instance_or_none(lollms_webui_server) -> None:
    import pydantic  # the test extra brings it (openai and ollama's clients need it)

    class Person(pydantic.BaseModel):
        name: str
        year: int

    answers = iter(['{"name": "Ada", "year": 1815}', '{"name": "Ada"}', '{"name": "Ada"}'])
    lollms_webui_server.reply = lambda prompt: next(answers)
    lc = LollmsClient("lollms", lollms_webui_server.url)
    person = lc.generate_structured_content_pydantic("Ada, born 1815", Person)
    assert isinstance(person, Person) and (person.name, person.year) == ("Ada", 1815)
    with pytest.warns(LollmsMagicsWarning, match="year"):  # the answer and its repair lack the year
        assert lc.generate_structured_content_pydantic("Ada", Person(name="x", year=1)) is None
    with pytest.raises(TypeError, match="Pydantic"):
        lc.generate_structured_content_pydantic("Ada", dict)


# -- cheap to import ------------------------------------------------------------------


def test_jsonschema_and_pandas_are_not_imported_by_import_or_load_ext() -> None:
    probe = (
        "import sys, json\n"
        "import lollms_magics\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "InteractiveShell.instance().run_line_magic('load_ext', 'lollms_magics')\n"
        "import lollms_magics.core.structured\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('jsonschema', 'pandas'))))\n"
        "print('lollms_magics.ipython.magics' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded, registered = out.stdout.strip().splitlines()[-2:]
    assert registered == "True"  # the probe really loaded the extension
    assert json.loads(loaded) == []
