"""Keys read once for a whole mapped prompt, and still checked in every prompt sent.

``Session.map`` takes one snapshot of the known keys (typed ones and the
environment's) for all its items instead of reading the environment once per
request; these tests hold it to that and to the checks it must keep: a key
typed during the run is refused at once, other threads are not affected.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from lollms_magics import Session
from lollms_magics.core import keys as keys_module
from lollms_magics.core.keys import KeyStore
from lollms_magics.core.mapping import MapProgress, map_memory
from lollms_magics.errors import PromptError
from tests.servers import OpenAIServer
from tests.servers.openai_compat import last_user_text

pytestmark = pytest.mark.timeout(120)

LATE = "sk-late-typed-0123456789"


class CountingEnviron:
    """``os.environ`` as keys.py sees it, counting the passes over all its names."""

    def __init__(self) -> None:
        self.passes = 0

    def __iter__(self) -> Iterator[str]:
        self.passes += 1
        return iter(list(os.environ))

    def items(self) -> Any:
        self.passes += 1
        return list(os.environ.items())

    def get(self, name: str, default: Any = None) -> Any:
        return os.environ.get(name, default)

    def __getitem__(self, name: str) -> str:
        return os.environ[name]


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    map_memory().clear()
    yield
    map_memory().clear()


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    srv = OpenAIServer()
    srv.start()
    yield srv
    srv.stop()


def sent_prompts(server: OpenAIServer) -> list[str]:
    return [last_user_text(r.json["messages"]) for r in server.requests_to("/v1/chat/completions")]


def test_a_mapped_prompt_reads_the_environment_once_for_all_its_items(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_API_KEY", "sk-shop-0123456789")
    environ = CountingEnviron()
    monkeypatch.setattr(keys_module, "os", SimpleNamespace(environ=environ))
    session = Session("openai", model="test-model", host=server.url)
    try:
        result = session.map("Label {item}", [f"row {i}" for i in range(40)], concurrency=4, resume=False)
        assert result.complete and len(sent_prompts(server)) == 40
        assert 1 <= environ.passes <= 2, environ.passes  # was one pass per item (40)
        # The same snapshot still refuses the environment's key in a filled prompt.
        with pytest.raises(PromptError, match="item 1 holds an API key"):
            session.map("Label {item}", ["fine", "sk-shop-0123456789"], resume=False)
    finally:
        session.close()
    assert not any("sk-shop" in p for p in sent_prompts(server))


def test_a_key_typed_during_a_mapped_prompt_is_refused_in_the_items_left(server: OpenAIServer) -> None:
    session = Session("openai", model="test-model", host=server.url)

    def progress(event: MapProgress) -> None:
        if event.phase == "item" and event.done == 1:  # after the first answer, in the worker
            session.keys.set("openai", LATE)

    try:
        with pytest.raises(PromptError, match="holds an API key"):
            session.map("Label {item}", ["first", f"this one says {LATE}", "third"], concurrency=1,
                        resume=False, progress=progress)
    finally:
        session.close()
    prompts = sent_prompts(server)
    assert prompts == ["Label first"]
    assert not any(LATE in p for p in prompts)


def test_a_held_snapshot_sees_a_typed_key_and_leaves_other_threads_reading_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = KeyStore()
    text = "a note with sk-env-late-0123456789 in it"
    seen_elsewhere: list[bool] = []
    with store.held():
        assert not store.holds_secret(text)
        monkeypatch.setenv("LATE_API_KEY", "sk-env-late-0123456789")
        other = threading.Thread(target=lambda: seen_elsewhere.append(store.holds_secret(text)))
        other.start()
        other.join(10)
        store.set("openai", "sk-typed-in-between-42")
        assert store.holds_secret("say sk-typed-in-between-42")  # typed: read again at once
        assert store.holds_secret(text)  # and the environment with it
    assert seen_elsewhere == [True]
    assert store.holds_secret(text)
    assert store.redact(text) == "a note with *** in it"
