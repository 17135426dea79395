"""End to end: a summary through the ``openai`` binding against llama-cpp-python's own server.

The server (started once for the module by ``tests/test_llama_server.py``'s
fixture) serves the embedded SmolLM2 GGUF with n_ctx 2048. The document is
cut into chunks counted with the server's ``/extras/tokenize``; every request
must fit the server's context (it refuses those that do not), and the
summary must come back complete.
"""

from __future__ import annotations

import pytest

from lollms_magics import get_binding
from lollms_magics.bindings import llamacpp
from lollms_magics.summaries import ProgressEvent, summarize
from lollms_magics.summaries.resume import shared_memory
from tests.test_llama_server import llama_server  # noqa: F401  (the module's server fixture)

pytestmark = [pytest.mark.model, pytest.mark.server, pytest.mark.timeout(600)]

SECTIONS = [
    ("The harbour", "The harbour of Brest was rebuilt in 1950 after the war, with four new piers."),
    ("The bridge", "Engineer Anne Kerlo designed the Recouvrance bridge, opened in 1954."),
    ("The ferry", "The ferry to Ushant leaves at nine every morning and carries 300 passengers."),
]


def document() -> str:
    filler = (
        "The town council discussed the works again, heard the residents, and asked the engineers "
        "for more details about the costs, the calendar and the materials. "
    )
    return "\n\n".join(f"## {title}\n\n{fact} " + filler * 22 for title, fact in SECTIONS)


def test_a_long_document_is_summarized_through_llama_cpp_python(llama_server: str) -> None:  # noqa: F811
    shared_memory().clear()
    binding = get_binding("openai", host=llama_server, model="smollm2")
    events: list[ProgressEvent] = []
    ctx = llamacpp.DEFAULT_CTX
    result = summarize(
        document(), binding, ctx_size=ctx, temperature=0, n_predict=160, progress=events.append
    )
    assert result.complete, result.error
    assert binding._tokenize_found == (("/extras/tokenize", "input"),)  # counted by the server itself
    assert result.chunks >= 2
    assert result.calls == result.chunks + 1  # notes per chunk, then the final call
    assert result.text.strip()
    assert len([s for s in result.steps if s]) >= 1  # at least one chunk gave usable notes
    assert [e.chunk for e in events if e.phase == "chunk"] == list(range(1, result.chunks + 1))
