"""The loopback servers are faithful enough for the official clients.

The OpenAI and Ollama servers are driven with the ``openai`` and ``ollama``
SDKs; the legacy LoLLMs server (no maintained client) with raw httpx.
"""

from __future__ import annotations

import base64
import email.utils
import threading
import time

import httpx
import ollama
import openai
import pytest

from tests.servers import LOLLMS_KEY, tiny_png

PROMPT = "héllo 🙂\nwörld, ça va?"
EXPECTED = "Echo: " + PROMPT
PNG_B64 = base64.b64encode(tiny_png()).decode()
SHORT = httpx.Timeout(5.0)


# ------------------------------------------------------------------ helpers


@pytest.fixture(params=["openai", "lollms"])
def oai(request):
    """(server, model, key) for both OpenAI-flavoured servers."""
    if request.param == "openai":
        return request.getfixturevalue("openai_server"), "test-model", "sk-anything"
    return request.getfixturevalue("lollms_server"), "ollama/test-model", LOLLMS_KEY


def sdk(srv, key, retries=0):
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=retries, timeout=5.0)


def user(text=PROMPT):
    return [{"role": "user", "content": text}]


# ------------------------------------------------------------ OpenAI flavour


def test_openai_stream_chat(oai):
    srv, model, key = oai
    stream = sdk(srv, key).chat.completions.create(
        model=model, messages=user(), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == EXPECTED
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(chunks) - 3
    assert srv.last_request.json["stream"] is True
    assert srv.last_request.headers["authorization"] == f"Bearer {key}"


def test_openai_nonstream_chat_and_length(oai):
    srv, model, key = oai
    client = sdk(srv, key)
    r = client.chat.completions.create(model=model, messages=user())
    assert r.choices[0].message.content == EXPECTED
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == len(PROMPT.split())
    r = client.chat.completions.create(model=model, messages=user(), max_tokens=2)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 2


def test_openai_stream_length_finish(openai_server):
    chunks = list(
        sdk(openai_server, "k").chat.completions.create(
            model="test-model", messages=user(), stream=True, max_tokens=3
        )
    )
    assert [c.choices[0].finish_reason for c in chunks][-1] == "length"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == EXPECTED[:9]


def test_openai_list_models(oai):
    srv, model, key = oai
    ids = [m.id for m in sdk(srv, key).models.list()]
    assert model in ids


def test_openai_images_b64_and_url(oai):
    srv, _model, key = oai
    client = sdk(srv, key)
    r = client.images.generate(prompt="a cat", response_format="b64_json", n=2)
    assert len(r.data) == 2
    assert base64.b64decode(r.data[0].b64_json).startswith(b"\x89PNG")
    r = client.images.generate(prompt="a cat", response_format="url")
    assert httpx.get(r.data[0].url, timeout=SHORT).content.startswith(b"\x89PNG")


def test_openai_midstream_error_raises(oai):
    srv, _, key = oai
    stream = sdk(srv, key).chat.completions.create(model="fail-midstream", messages=user(), stream=True)
    got = []
    with pytest.raises(openai.APIError, match="boom"):
        for c in stream:
            got.append(c.choices[0].delta.content or "")
    assert "".join(got) == EXPECTED[:9]  # role chunk + 3 pieces (2+3+4 chars)


def test_openai_llamacpp_error_line_is_silently_dropped_by_sdk(openai_server):
    # Documented deviation: the SDK ignores the unknown `error:` field and
    # stops at [DONE]; hand-written parsers must look for it explicitly.
    chunks = list(
        sdk(openai_server, "k").chat.completions.create(
            model="fail-midstream-llamacpp", messages=user(), stream=True
        )
    )
    assert all(c.choices[0].finish_reason is None for c in chunks)
    with httpx.stream(
        "POST",
        openai_server.url + "/v1/chat/completions",
        timeout=SHORT,
        json={"model": "fail-midstream-llamacpp", "messages": user(), "stream": True},
    ) as r:
        lines = list(r.iter_lines())
    assert 'error: {"code":500,"message":"boom","type":"server_error"}' in lines
    assert lines[-2:] == ["data: [DONE]", ""]


def test_openai_auth_failure(oai):
    srv, model, _ = oai
    srv.api_key = srv.api_key or "sk-right-key"
    with pytest.raises(openai.AuthenticationError) as ei:
        sdk(srv, "lollms_wrong").chat.completions.create(model=model, messages=user())
    assert ei.value.status_code == 401
    if srv.error_style == "fastapi":
        r = httpx.get(srv.url + "/v1/models", timeout=SHORT)
        assert r.json() == {"detail": "API Key is required."}
        assert r.headers["www-authenticate"] == "Bearer"
    else:
        assert ei.value.code == "invalid_api_key"


def test_openai_unknown_model_404(oai):
    srv, _, key = oai
    with pytest.raises(openai.NotFoundError):
        sdk(srv, key).chat.completions.create(model="nope/missing", messages=user(), stream=True)


def test_openai_429_retry_then_success(oai):
    srv, model, key = oai
    srv.fail_next = [(429, {"retry-after-ms": "100"})]
    r = sdk(srv, key, retries=2).chat.completions.create(model=model, messages=user())
    assert r.choices[0].message.content == EXPECTED
    assert len(srv.requests_to("/v1/chat/completions")) == 2


def test_openai_429_http_date_and_quota(openai_server):
    when = email.utils.formatdate(time.time() + 1, usegmt=True)
    openai_server.fail_next = [(429, {"retry-after": when})]
    t0 = time.monotonic()
    r = sdk(openai_server, "k", retries=1).chat.completions.create(model="test-model", messages=user())
    assert r.choices[0].message.content == EXPECTED and time.monotonic() - t0 < 3
    openai_server.fail_next = [(429, {}, "insufficient_quota")]
    with pytest.raises(openai.RateLimitError) as ei:
        sdk(openai_server, "k").chat.completions.create(model="test-model", messages=user())
    assert ei.value.code == "insufficient_quota"


def test_openai_error_styles(openai_server):
    openai_server.error_style = "vllm"
    r = httpx.post(
        openai_server.url + "/v1/chat/completions", timeout=SHORT, json={"model": "zzz", "messages": user()}
    )
    assert r.status_code == 404 and r.json()["object"] == "error" and r.json()["code"] == 404
    openai_server.error_style = "fastapi"
    openai_server.fail_next = [(503, {})]
    r = httpx.get(openai_server.url + "/v1/models", timeout=SHORT)
    assert r.status_code == 503 and "detail" in r.json()


def test_openai_vision_validation(openai_server):
    client = sdk(openai_server, "k")
    good = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG_B64}},
            ],
        }
    ]
    assert (
        client.chat.completions.create(model="vision-model", messages=good).choices[0].message.content
        == "Echo: what?"
    )
    bad = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_B64}}]}]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="vision-model", messages=bad)


def test_openai_crlf_and_keepalive_framing(openai_server):
    openai_server.crlf = True
    openai_server.keepalive_comments = True
    with httpx.stream(
        "POST",
        openai_server.url + "/v1/chat/completions",
        timeout=SHORT,
        json={"model": "test-model", "messages": user(), "stream": True},
    ) as r:
        raw = r.read()
    assert b"\r\n\r\n" in raw and b": keep-alive" in raw and b"\n\n" not in raw.replace(b"\r\n", b"")
    chunks = list(
        sdk(openai_server, "k").chat.completions.create(model="test-model", messages=user(), stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == EXPECTED


# ---------------------------------------------------------- stream endings


def test_sse_framing_is_split_and_coalesced(openai_server):
    with _sse_post(openai_server, "test-model") as r:
        raw = list(r.iter_raw())
    assert any(c.count(b"data:") >= 2 for c in raw)  # several events in one write
    assert any(not c.endswith(b"\n\n") for c in raw)  # an event cut mid-line
    assert any((c[-1] & 0xC0) == 0xC0 for c in raw if c)  # a multibyte character cut
    assert b"".join(raw).decode().count("data: ") == len(b"".join(raw).split(b"\n\n")) - 1


def _sse_post(srv, model, timeout=SHORT):
    return httpx.stream(
        "POST",
        srv.url + "/v1/chat/completions",
        timeout=timeout,
        json={"model": model, "messages": user(), "stream": True},
    )


def test_truncate_raises_protocol_error(openai_server):
    with pytest.raises(httpx.RemoteProtocolError), _sse_post(openai_server, "truncate") as r:
        list(r.iter_lines())


def test_truncate_midline_cuts_json(ollama_server):
    lines = []
    body = {"model": "truncate-midline", "prompt": PROMPT}
    url = ollama_server.url + "/api/generate"
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("POST", url, timeout=SHORT, json=body) as r:
        for ln in r.iter_lines():
            lines.append(ln)
    assert len(lines) == 3


def test_truncate_clean_has_no_terminator(openai_server):
    with _sse_post(openai_server, "truncate-clean") as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert len(lines) == 4 and "[DONE]" not in lines[-1]


def test_stall_hits_read_timeout(openai_server):
    for model in ("stall", "stall-before"):
        t0 = time.monotonic()
        quick = httpx.Timeout(5.0, read=0.3)
        with pytest.raises(httpx.ReadTimeout), _sse_post(openai_server, model, quick) as r:
            list(r.iter_lines())
        assert time.monotonic() - t0 < 2


def test_stop_ends_a_stall_promptly(openai_server):
    errors = []

    def reader():
        try:
            with _sse_post(openai_server, "stall") as r:
                list(r.iter_lines())
        except httpx.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    deadline = time.monotonic() + 10  # on a loaded machine the request may take a while to arrive
    while not openai_server.requests_to("/v1/chat/completions") and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # into the stall
    t0 = time.monotonic()
    openai_server.stop()
    t.join(3)
    assert not t.is_alive() and time.monotonic() - t0 < 2
    assert errors and isinstance(errors[0], httpx.RemoteProtocolError)


def test_client_stopping_early_is_recorded_as_disconnect(openai_server):
    with _sse_post(openai_server, "slow") as r:
        for i, _ in enumerate(r.iter_lines()):
            if i >= 4:
                break
    assert openai_server.wait_for_disconnect(2.0)
    assert openai_server.disconnects[0].json["model"] == "slow"


def test_benchmark_count_model_is_fast(ollama_server):
    t0 = time.monotonic()
    n = 0
    with httpx.stream(
        "POST",
        ollama_server.url + "/api/generate",
        timeout=SHORT,
        json={"model": "count-20000", "prompt": "x"},
    ) as r:
        for _ in r.iter_lines():
            n += 1
    assert n == 20001 and time.monotonic() - t0 < 5


# ------------------------------------------------------------------ Ollama


def oclient(srv):
    return ollama.Client(host=srv.url, timeout=5)


def test_ollama_chat_stream_and_nonstream(ollama_server):
    c = oclient(ollama_server)
    parts = list(c.chat(model="test-model", messages=user(), stream=True))
    assert "".join(p.message.content for p in parts) == EXPECTED
    assert parts[-1].done and parts[-1].done_reason == "stop" and parts[-1].eval_count == len(parts) - 1
    assert all(p.created_at for p in parts)
    r = c.chat(model="test-model", messages=user(), options={"num_predict": 2})
    assert r.message.content == EXPECTED[:5] and r.done_reason == "length" and r.eval_count == 2
    assert ollama_server.last_request.json["options"]["num_predict"] == 2


def test_ollama_generate_stream_and_nonstream(ollama_server):
    c = oclient(ollama_server)
    parts = list(c.generate(model="test-model", prompt=PROMPT, stream=True))
    assert "".join(p.response for p in parts) == EXPECTED and parts[-1].done
    r = c.generate(model="test-model:latest", prompt=PROMPT)
    assert r.response == EXPECTED and r.prompt_eval_count == len(PROMPT.split()) and r.total_duration > 0


def test_ollama_stream_is_default(ollama_server):
    with httpx.stream(
        "POST",
        ollama_server.url + "/api/generate",
        timeout=SHORT,
        json={"model": "test-model", "prompt": "hi"},
    ) as r:
        assert r.headers["content-type"] == "application/x-ndjson"
        lines = [ln for ln in r.iter_lines() if ln]
    assert len(lines) > 1


def test_ollama_list_show_ps_version(ollama_server):
    c = oclient(ollama_server)
    names = [m.model for m in c.list().models]
    assert names == ["test-model:latest", "vision-model:latest"]
    assert "vision" in c.show("vision-model").capabilities
    with pytest.raises(ollama.ResponseError) as ei:
        c.show("missing")
    assert ei.value.status_code == 404 and "not found" in ei.value.error
    assert c.ps().models[0].model == "test-model:latest"
    assert httpx.get(ollama_server.url + "/api/version").json()["version"]
    assert httpx.get(ollama_server.url + "/").text == "Ollama is running"


def test_ollama_unknown_model_and_midstream_error(ollama_server):
    c = oclient(ollama_server)
    with pytest.raises(ollama.ResponseError) as ei:
        list(c.chat(model="missing", messages=user(), stream=True))
    assert ei.value.status_code == 404
    got = []
    with pytest.raises(ollama.ResponseError, match="error was encountered"):
        for p in c.chat(model="fail-midstream", messages=user(), stream=True):
            got.append(p.message.content)
    assert "".join(got) == EXPECTED[:9]


def test_ollama_images(ollama_server):
    c = oclient(ollama_server)
    r = c.chat(model="vision-model", messages=[{"role": "user", "content": "see", "images": [tiny_png()]}])
    assert r.message.content == "Echo: see"
    sent = ollama_server.last_request.json["messages"][0]["images"][0]
    assert base64.b64decode(sent).startswith(b"\x89PNG")
    r = httpx.post(
        ollama_server.url + "/api/generate",
        timeout=SHORT,
        json={"model": "vision-model", "prompt": "x", "images": ["data:image/png;base64," + PNG_B64]},
    )
    assert r.status_code == 400 and r.json() == {"error": "illegal base64 data at input byte 4"}
    r = httpx.post(ollama_server.url + "/api/chat", timeout=SHORT, content=b"")
    assert r.status_code == 400 and r.json() == {"error": "missing request body"}


def test_ollama_429(ollama_server):
    ollama_server.fail_next = [(429, {"retry-after": "1"})]
    r = httpx.post(ollama_server.url + "/api/chat", json={"model": "test-model", "messages": user()})
    assert r.status_code == 429 and r.json() == {"error": "too many requests"}
    assert r.headers["retry-after"] == "1"


# ------------------------------------------------------------ new LoLLMs


def test_lollms_specifics(lollms_server):
    url = lollms_server.url
    auth = {"Authorization": f"Bearer {LOLLMS_KEY}"}
    r = httpx.post(
        url + "/lollms/v1/tokenize", headers=auth, json={"model": "ollama/test-model", "text": "a b c"}
    )
    assert r.json()["count"] == 3 and len(r.json()["tokens"]) == 3
    assert httpx.get(url + "/list_models", headers=auth).status_code == 404
    lollms_server.fail_next = [(429, {"retry-after": "1"})]
    r = httpx.get(url + "/v1/models", headers=auth)
    assert r.status_code == 429 and r.json() == {"detail": "Rate limit exceeded."}
    assert "retry-after" not in r.headers
    r = httpx.post(
        url + "/v1/chat/completions", headers=auth, json={"model": "test-model", "messages": user()}
    )
    assert r.status_code == 400 and "detail" in r.json()
    with httpx.stream(
        "POST",
        url + "/v1/chat/completions",
        headers=auth,
        timeout=SHORT,
        json={"model": "ollama/fail-midstream", "messages": user(), "stream": True},
    ) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-2:] == ['data: {"error": {"message": "boom", "type": "server_error"}}', "data: [DONE]"]


# ----------------------------------------------------------- legacy LoLLMs


def _legacy(srv, **body):
    body.setdefault("prompt", "!@>user: " + PROMPT + "\n!@>assistant:")
    return httpx.stream("POST", srv.url + "/lollms_generate", json=body, timeout=SHORT)


def test_legacy_stream_raw_text(lollms_webui_server):
    with _legacy(lollms_webui_server, stream=True) as r:
        assert r.headers["content-type"] == "text/event-stream"
        raw_chunks = list(r.iter_raw())
    text = b"".join(raw_chunks).decode()
    assert text == EXPECTED  # no stray "!": the real server drops a held-back one
    assert any(b"\n" in c for c in raw_chunks)
    assert any(len(c) and (c[-1] & 0xC0) == 0xC0 for c in raw_chunks)  # multibyte char cut across writes
    with _legacy(lollms_webui_server, stream=True) as r:
        assert "".join(r.iter_text()) == EXPECTED


def test_legacy_nonstream_and_quirks(lollms_webui_server):
    url = lollms_webui_server.url
    r = httpx.post(url + "/lollms_generate", json={"prompt": PROMPT, "n_predict": 3})
    assert r.headers["content-type"].startswith("text/plain") and r.text == EXPECTED[:9]
    r = httpx.post(
        url + "/lollms_generate", json={"prompt": "x", "model_name": "server-error", "stream": True}
    )
    assert r.status_code == 200 and r.json()["status"] is False and r.json()["error"]
    r = httpx.post(url + "/lollms_generate", json={"prompt": "x", "model_name": "no-binding"})
    assert r.status_code == 200 and r.text == "null"
    r = httpx.post(url + "/lollms_generate", json={"stream": True})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "prompt"]
    r = httpx.post(
        url + "/lollms_generate_with_images",
        json={"prompt": "x", "images": ["data:image/jpeg;base64," + PNG_B64]},
    )
    assert r.status_code == 400 and r.json()["detail"].startswith("Error : ")
    r = httpx.post(
        url + "/lollms_generate_with_images",
        json={"prompt": "see", "images": ["data:image/png;base64," + PNG_B64, PNG_B64]},
    )
    assert r.status_code == 200 and r.text == "Echo: see"
    r = httpx.get(url + "/v1/models")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_legacy_endpoints(lollms_webui_server):
    url = lollms_webui_server.url
    assert httpx.get(url + "/list_models").json() == ["test-model", "vision-model"]
    assert httpx.get(url + "/get_active_model").json() == {"status": True, "model": "test-model", "index": 0}
    ids = httpx.post(url + "/lollms_tokenize", json={"prompt": "one two one"}).json()
    assert len(ids) == 3 and ids[0] == ids[2]
    assert httpx.post(url + "/lollms_detokenize", json={"tokens": ids}).json() == "one two one"
    assert httpx.get(url + "/get_generation_status").json() == {"status": False}


def test_legacy_stop_gen_and_faults(lollms_webui_server):
    srv = lollms_webui_server
    got = []
    with _legacy(srv, stream=True, model_name="slow") as r:
        for chunk in r.iter_text():
            got.append(chunk)
            if len(got) == 3:
                assert httpx.get(srv.url + "/get_generation_status").json() == {"status": True}
                assert httpx.post(srv.url + "/stop_gen").json() == {"status": True}
    assert len("".join(got)) < 50 * 4
    with _legacy(srv, stream=True, model_name="fail-midstream") as r:
        assert "".join(r.iter_text()) == EXPECTED[:9]  # ends early, cleanly, no signal
    with pytest.raises(httpx.RemoteProtocolError), _legacy(srv, stream=True, model_name="truncate") as r:
        list(r.iter_text())
