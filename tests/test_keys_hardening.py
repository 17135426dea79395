"""Keys as they really arrive: with a line end, inside errors, documents, image prompts and server settings.

A key read with ``open("key.txt").read()`` or from a CRLF ``.env`` ends in a
line break; these tests send such keys to the loopback servers through the
paths users take (a Session, a cell, ``LollmsClient``, the panels) and check
what the server received, what the notebook shows, and what is refused before
anything is sent.
"""

from __future__ import annotations

import getpass
import json
import secrets
import socket
from urllib.parse import quote

import httpx
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from lollms_magics import panels
from lollms_magics.bindings import get_binding, lollms
from lollms_magics.bindings.openai import OpenAIBinding
from lollms_magics.compat import LollmsClient
from lollms_magics.core import auto
from lollms_magics.core.keys import KeyStore, declared_key_variables
from lollms_magics.core.session import Session
from lollms_magics.errors import InvalidOptionError, PromptError, RequestNotSentError, ServerUnreachableError
from lollms_magics.secret_fields import is_secret_field, mask_settings
from tests.servers import LOLLMS_KEY
from tests.shell import magics_shell

KEY = "sk-hardening-" + secrets.token_hex(12)
ENV = (
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL", "LOLLMS_API_KEY", "LOLLMS_HOST", "LOLLMS_CLIENT_ID",
    "LOLLMS_MAGICS_BINDING", "LOLLMS_MAGICS_MODEL", "LOLLMS_MAGICS_HOST", "OLLAMA_HOST", "A1111_API_AUTH",
)
WEBUI_ID = "loopback-client-id"
SERVED_KEY = "sk-served-by-webui-" + secrets.token_hex(8)


def closed_url() -> str:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def env(monkeypatch):
    """No key, host or binding variable of the machine running the tests."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def ip(env):
    """A shell with fresh magics on their own session."""
    with magics_shell(env, load_ext=True) as shell:  # env: ENV already cleared
        yield shell


def run_cell(ip, source):
    """Run ``source`` as a notebook does (a failure is shown, not raised); the result and the capture."""
    with capture_output() as cap:
        result = ip.run_cell(source)
    return result, cap


def everything_shown(cap) -> str:
    """All a capture holds, as a saved notebook would keep it."""
    return json.dumps([cap.stdout, cap.stderr, [(o.data, o.metadata) for o in cap.outputs]])


def usage_error(ip, line, body=None) -> str:
    with pytest.raises(UsageError) as info, capture_output():
        if body is None:
            ip.run_line_magic("lollms", line)
        else:
            ip.run_cell_magic("lollms", line, body)
    return str(info.value)


# -- a key with a line end is sent stripped -------------------------------------------------------


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
@pytest.mark.parametrize("source", ["file", "environment"])
@pytest.mark.parametrize("name", ["openai", "lollms"])
def test_a_key_ending_in_a_line_break_is_sent_without_it(request, env, tmp_path, name, source, ending):
    server = request.getfixturevalue(f"{name}_server")
    key = LOLLMS_KEY if name == "lollms" else KEY  # the LoLLMs loopback wants a lollms_ key
    server.api_key = key
    model = "ollama/test-model" if name == "lollms" else "test-model"
    if source == "file":
        path = tmp_path / "key.txt"
        path.write_bytes((key + ending).encode())
        with open(path, newline="") as f:  # newline="": the \r stays, as on Windows or from a .env
            binding = get_binding(name, server.url, model, f.read())
        try:
            assert binding.generate("Say hello").text == "Echo: Say hello"
        finally:
            binding.close()
    else:
        env.setenv("OPENAI_API_KEY" if name == "openai" else "LOLLMS_API_KEY", key + ending)
        session = Session(name, model, server.url)
        try:
            assert session.ask("Say hello", history=False).text == "Echo: Say hello"
        finally:
            session.close()
    assert server.requests and {r.headers.get("authorization") for r in server.requests} == {f"Bearer {key}"}


def test_a_cell_whose_key_variable_ends_in_crlf_answers_and_shows_no_key(ip, env, openai_server):
    openai_server.api_key = KEY
    env.setenv("OPENAI_API_KEY", KEY + "\r\n")
    result, cap = run_cell(ip, f"%%lollms -b openai --host {openai_server.url}\nSay hello")
    assert result.error_in_exec is None, cap.stderr
    assert cap.outputs[-1].data["text/markdown"] == "Echo: Say hello"
    assert KEY not in everything_shown(cap)
    assert openai_server.last_request.headers["authorization"] == f"Bearer {KEY}"


def test_set_key_and_lollms_client_strip_the_key(env, openai_server, lollms_server):
    openai_server.api_key = KEY
    session = Session("openai", "test-model", openai_server.url)
    session.set_key("openai", f"  {KEY}\n")
    try:
        assert session.ask("Say hello", history=False).text == "Echo: Say hello"
    finally:
        session.close()
    assert openai_server.last_request.headers["authorization"] == f"Bearer {KEY}"

    lc = LollmsClient("lollms", lollms_server.url, "ollama/test-model", service_key=LOLLMS_KEY + "\r\n")
    try:
        assert lc.generate_text("Say hello") == "Echo: Say hello"
    finally:
        lc.close()
    assert {r.headers.get("authorization") for r in lollms_server.requests} == {f"Bearer {LOLLMS_KEY}"}


def test_the_settings_panel_strips_a_pasted_key(env, openai_server):
    openai_server.api_key = KEY
    InteractiveShell.instance()
    session = Session()
    try:
        panel = panels.settings(session)
        panel.binding.value, panel.host.value = "openai", openai_server.url
        panel.key.value = KEY + "\r\n"
        with capture_output():
            panel.use.click()
        session.use("openai", "test-model", openai_server.url)
        assert session.ask("Say hello", history=False).text == "Echo: Say hello"
    finally:
        session.close()
    assert openai_server.last_request.headers["authorization"] == f"Bearer {KEY}"


# -- a control character inside a key is refused without showing it --------------------------------


@pytest.mark.parametrize("inside", ["\n", "\r", "\t", "\x00", "\x1b"])
def test_a_key_with_a_control_character_inside_is_refused_in_one_line(env, inside):
    key = KEY[:12] + inside + KEY[12:]
    with pytest.raises(InvalidOptionError) as info:
        Session("openai", "test-model", closed_url(), api_key=key)
    message = str(info.value)
    assert "\n" not in message and KEY[:12] not in message and KEY[12:] not in message
    assert message.startswith("the key given for openai holds ")


def test_a_cell_refuses_a_key_variable_with_a_line_break_inside(ip, env, openai_server):
    env.setenv("OPENAI_API_KEY", KEY[:12] + "\n" + KEY[12:])
    message = usage_error(ip, f"-b openai --host {openai_server.url} Say hello")
    assert message.startswith("%lollms: OPENAI_API_KEY holds a line break inside the key")
    assert "\n" not in message and KEY[:12] not in message and KEY[12:] not in message
    assert openai_server.requests == []


def test_a_typed_key_with_a_control_character_is_a_usage_error(ip, env, monkeypatch):
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": KEY[:12] + "\x1b[A" + KEY[12:])
    message = usage_error(ip, "key openai")
    assert "holds a control character inside the key" in message and KEY[12:] not in message
    assert ip.find_magic("lollms").__self__.session.keys.get("openai") is None


def test_the_settings_panel_refuses_a_key_with_a_control_character(env, openai_server):
    InteractiveShell.instance()
    session = Session()
    try:
        panel = panels.settings(session)
        panel.binding.value, panel.host.value = "openai", openai_server.url
        panel.key.value = KEY[:12] + "\x07" + KEY[12:]
        with capture_output():
            panel.use.click()
        assert "holds a control character inside the key" in panel.status.value
        assert KEY[12:] not in panel.status.value
        assert session.keys.get("openai") is None
    finally:
        session.close()


# -- no error is built from a request header ----------------------------------------------------------


def test_a_header_httpx_refuses_fails_without_quoting_it_and_not_as_unreachable(env, openai_server):
    binding = OpenAIBinding(openai_server.url, "test-model")
    binding._api_key = KEY + "\n"  # past every entry check: only the request itself can refuse it
    try:
        with pytest.raises(RequestNotSentError) as info:
            _ = binding.generate("Say hello").text
    finally:
        binding.close()
    assert not isinstance(info.value, ServerUnreachableError)  # the automatic choice keeps the server
    message = str(info.value)
    assert KEY not in message and "Illegal header" not in message and "\n" not in message
    assert message.startswith(f"openai: the request to {openai_server.url}/v1 could not be sent")
    assert openai_server.requests == []  # it never left


def test_the_automatic_choice_finds_a_lollms_server_whose_key_variable_ends_in_a_newline(
    env, lollms_server, ollama_server
):
    env.setattr(lollms, "WEBUI_HOST", closed_url())
    env.setattr(lollms, "SERVER_HOST", lollms_server.url)
    env.setenv("OLLAMA_HOST", ollama_server.url)  # the one it used to fall back to
    env.setenv("LOLLMS_API_KEY", LOLLMS_KEY + "\r\n")
    choice = auto.choose_binding(timeout=2.0)
    assert (choice.name, choice.host) == ("lollms", lollms_server.url)
    session = Session()
    session.auto_timeout = 2.0
    try:
        assert session.ask("Say hello", history=False).text == "Echo: Say hello"
    finally:
        session.close()
    assert {r.headers.get("authorization") for r in lollms_server.requests} == {f"Bearer {LOLLMS_KEY}"}


# -- redaction catches a key however it is written ---------------------------------------------------------


def test_redaction_masks_the_key_in_httpx_own_message(env, openai_server):
    env.setenv("OPENAI_API_KEY", KEY + "\n")
    with httpx.Client() as client:  # the message users saw in the cell, made by httpx itself
        try:
            client.get(openai_server.url + "/v1/models", headers={"Authorization": f"Bearer {KEY}\n"})
        except httpx.HTTPError as exc:
            message = str(exc)
    assert KEY in message
    store = KeyStore(declared_key_variables)
    assert store.holds_secret(message)
    shown = "Illegal header value b'Bearer " + KEY + "\\n'"
    assert store.redact(shown) == "Illegal header value b'Bearer ***\\n'"
    assert KEY not in store.redact(message)


def test_redaction_masks_json_url_and_repr_forms_of_a_key(env):
    key = 'sk-a/b+c="d\\e-' + secrets.token_hex(6)  # characters JSON, URLs and reprs all escape
    env.setenv("SERVICE_API_KEY", f"  {key}\r\n")  # surrounding whitespace, as in a CRLF .env
    store = KeyStore()
    hex_tail = key[-12:]
    samples = {
        "raw": f"Bearer {key}",
        "json": json.dumps({"text": f"the key is {key}"}),  # what a saved notebook holds
        "url": str(httpx.URL("https://example.org/search", params={"q": key})),
        "path": f"https://example.org/keys/{quote(key, safe='')}/info",
        "repr": repr({"authorization": f"Bearer {key}"}),
        "bytes": repr(f"Bearer {key}\n".encode()),
    }
    for form, text in samples.items():
        assert hex_tail in text, form
        assert store.holds_secret(text), form
        assert hex_tail not in store.redact(text), form
        assert "***" in store.redact(text), form
    assert store.redact('{"text": "the key is ' + key.replace("\\", "\\\\").replace('"', '\\"') + '"}') == (
        '{"text": "the key is ***"}')


def test_an_image_binding_key_variable_is_redacted(env):
    env.setenv("A1111_API_AUTH", "painter:s3cret-pass-phrase\n")
    store = KeyStore(declared_key_variables)
    assert store.redact("auth painter:s3cret-pass-phrase refused") == "auth *** refused"


# -- a document, an image prompt or a panel prompt holding a key is refused before anything is sent ----------


@pytest.fixture
def keyed(env, openai_server):
    """The OpenAI loopback wanting KEY, which the environment holds."""
    openai_server.api_key = KEY
    env.setenv("OPENAI_API_KEY", KEY)
    return openai_server


def test_summarize_refuses_a_variable_holding_a_key_before_any_request(ip, keyed):
    ip.user_ns["report"] = f"Minutes of the harbour committee. Our key is {KEY}. The harbour is old."
    message = usage_error(ip, f"summarize report -b openai -m test-model --host {keyed.url}")
    assert message.startswith("%lollms: the text to summarize holds an API key")
    assert KEY not in message and "\n" not in message
    ip.user_ns["token"] = KEY  # a variable that is the key
    line = f"summarize token -b openai -m test-model --host {keyed.url}"
    assert "holds an API key" in usage_error(ip, line)
    assert keyed.requests == []


def test_summarize_names_the_file_that_holds_a_key(ip, keyed, tmp_path):
    path = tmp_path / "report.txt"
    path.write_text(f"Harbour minutes.\n\nThe deploy key: {KEY}\n\nNothing else.\n")
    message = usage_error(ip, f"summarize {path} -b openai -m test-model --host {keyed.url}")
    assert message.startswith("%lollms: the document report.txt holds an API key")
    ip.user_ns["clean"] = "Harbour minutes. The harbour is old. " * 5
    line = f"summarize clean -b openai -m test-model --host {keyed.url}"
    message = usage_error(ip, line, f"Look for {KEY}")
    assert message.startswith("%lollms: the summary's instruction holds an API key")
    assert keyed.requests == []


def test_session_summarize_and_lollms_client_refuse_a_text_holding_a_key(keyed):
    text = f"The harbour is old. The key is {KEY}. " * 3
    session = Session("openai", "test-model", keyed.url)
    try:
        with pytest.raises(PromptError, match=r"^the text to summarize holds an API key"):
            session.summarize(text)
    finally:
        session.close()
    lc = LollmsClient("openai", keyed.url, "test-model")
    try:
        answer = lc.sequential_summarize(text)
    finally:
        lc.close()
    assert answer.startswith("Error: the text to summarize holds an API key") and KEY not in answer
    assert keyed.requests == []


def test_the_summarize_panel_refuses_a_document_holding_a_key(keyed):
    InteractiveShell.instance().user_ns["report"] = f"The harbour is old. The key is {KEY}."
    session = Session("openai", "test-model", keyed.url)
    try:
        panel = panels.summarize(session)
        panel.source.value = "report"
        with capture_output() as cap:
            assert panel.run()
            assert panel.wait(30)
        assert "the text to summarize holds an API key" in panel.status.value
        assert KEY not in everything_shown(cap) and KEY not in panel.status.value
    finally:
        session.close()
        del InteractiveShell.instance().user_ns["report"]
    assert keyed.requests == []


def test_an_image_prompt_naming_a_key_variable_is_refused_naming_it(ip, env, a1111_server):
    env.setenv("OPENAI_API_KEY", KEY)
    ip.user_ns["secret"] = KEY
    line = f"image -b a1111 --host {a1111_server.url} -W 32 -H 32 an owl reading {{secret}}"
    message = usage_error(ip, line)
    assert message.startswith("%lollms: {secret} holds an API key")
    message = usage_error(ip, f"image -b a1111 --host {a1111_server.url} --negative {KEY} an owl")
    assert message.startswith("%lollms: the negative prompt holds an API key") and KEY not in message
    assert a1111_server.requests == []


def test_the_image_and_chat_panels_refuse_a_prompt_holding_a_key(env, a1111_server, openai_server):
    env.setenv("OPENAI_API_KEY", KEY)
    InteractiveShell.instance()
    session = Session("openai", "test-model", openai_server.url)
    session.use_image("a1111", host=a1111_server.url)
    try:
        image = panels.image(session)
        image.prompt.value = f"an owl holding a card that reads {KEY}"
        with capture_output() as cap:
            image.generate.click()
            assert image.wait(30)
        assert "the image prompt holds an API key" in image.status.value
        chat = panels.chat(session)
        chat.prompt.value = f"Remember {KEY} for me"
        with capture_output() as chat_cap:
            chat.send.click()
            assert chat.wait(30)
        assert "this prompt holds an API key" in chat.status.value
        assert KEY not in everything_shown(cap) + everything_shown(chat_cap)
    finally:
        session.close()
    assert a1111_server.requests == [] and openai_server.requests == []


# -- secret server settings are masked wherever settings are shown ---------------------------------------


@pytest.fixture
def webui(lollms_webui_server):
    """lollms-webui whose image service has an OpenAI key among its settings."""
    lollms_webui_server.tti_settings.append(
        {"name": "openai_api_key", "type": "str", "value": SERVED_KEY, "help": "OpenAI key for DALL-E"})
    return lollms_webui_server


def served_key(server) -> str:
    return next(e["value"] for e in server.tti_settings if e["name"] == "openai_api_key")


def test_tti_settings_masks_a_secret_setting_and_set_keeps_it(ip, env, webui):
    with capture_output():
        ip.run_line_magic("lollms", f"tti use lollms --host {webui.url} --client-id {WEBUI_ID}")
    with capture_output() as cap:
        ip.run_line_magic("lollms", "tti settings")
    assert "steps = 4" in cap.stdout
    assert "openai_api_key = '***'" in cap.stdout
    assert SERVED_KEY not in everything_shown(cap)
    with capture_output():
        ip.run_line_magic("lollms", "tti set steps=9")
    assert webui.tti_settings[1]["value"] == 9 and served_key(webui) == SERVED_KEY


def test_lollms_client_tti_settings_are_masked_and_a_round_trip_keeps_the_key(env, webui):
    lc = LollmsClient(host_address=webui.url, tti_binding_name="lollms", service_key=WEBUI_ID)
    try:
        settings = lc.tti.get_settings()
        assert {e["name"]: e["value"] for e in settings}["openai_api_key"] == "***"
        assert SERVED_KEY not in json.dumps(settings)
        settings[1]["value"] = 8  # the course's get, change, set
        assert lc.tti.set_settings(settings) is True
    finally:
        lc.close()
    assert webui.tti_settings[1]["value"] == 8 and served_key(webui) == SERVED_KEY


def test_the_image_panel_applies_other_settings_without_clearing_a_hidden_one(env, webui):
    InteractiveShell.instance()
    session = Session()
    session.use_image("lollms", host=webui.url, client_id=WEBUI_ID)
    try:
        panel = panels.image(session)
        panel.load.click()
        assert panel.wait()
        assert panel.form.controls["openai_api_key"].value == ""  # shown hidden
        panel.form.controls["steps"].value = 6
        with capture_output():
            panel.apply_button.click()
            assert panel.wait()
    finally:
        session.close()
    assert webui.tti_settings[1]["value"] == 6 and served_key(webui) == SERVED_KEY


def test_one_rule_says_which_settings_are_secret():
    secret = ["api_key", "openai_api_key", "apiKey", "OPENAI_API_KEY", "hf_token", "password", "client_id",
              "clientId", "access-token", "auth", "secret"]
    plain = ["max_tokens", "keyedit_precision_attention", "steps", "model", "author", "monkey"]
    assert [n for n in secret if not is_secret_field(n)] == []
    assert [n for n in plain if is_secret_field(n)] == []
    # A number is no key, whatever its name (A1111's token merging ratio).
    assert mask_settings({"steps": 20, "hf_token": "hf_abc", "token_merging_ratio": 0.5, "api_key": ""}) == {
        "steps": 20, "hf_token": "***", "token_merging_ratio": 0.5, "api_key": ""}


def test_a_chat_prompt_refused_at_once_goes_back_in_the_box_with_send_enabled(env, openai_server):
    env.setenv("OPENAI_API_KEY", KEY)
    InteractiveShell.instance()
    session = Session("openai", "test-model", openai_server.url)
    try:
        chat = panels.chat(session)
        for _ in range(5):  # the refusal comes from the worker thread, racing the click's own updates
            chat.prompt.value = f"Remember {KEY} for me"
            with capture_output():
                chat.send.click()
                assert chat.wait(30)
            assert chat.prompt.value == f"Remember {KEY} for me"
            assert not chat.send.disabled and chat.stop.disabled
            assert "this prompt holds an API key" in chat.status.value
    finally:
        session.close()
    assert openai_server.requests == []
