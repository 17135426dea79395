"""What the loopback servers answer when a request asks for JSON.

Real servers turn a schema (OpenAI's ``response_format``, Ollama's ``format``)
into a grammar, so the model can write nothing but JSON that follows it. The
loopback has no model: it builds a value of the schema from the prompt
(strings take the prompt's text, integers its word count, a choice its first
option, a list one item) or takes ``server.json_reply(prompt, schema)``, and
streams the JSON in pieces like any answer. ``schema`` is None when only JSON
was asked for (``json_object``, ``format: "json"``).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["value_of"]


def value_of(schema: Any, prompt: str, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A value that follows ``schema``, made from ``prompt``; ``{"answer": prompt}`` without a schema."""
    if schema is None:
        return {"answer": "Echo: " + prompt}
    if not isinstance(schema, dict) or depth > 10:
        return None
    defs = defs if defs is not None else {**schema.get("definitions", {}), **schema.get("$defs", {})}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return value_of(defs.get(ref.rsplit("/", 1)[-1]), prompt, defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for choice in ("anyOf", "oneOf"):
        options = [s for s in schema.get(choice) or [] if s != {"type": "null"}]
        if options:
            return value_of(options[0], prompt, defs, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: value_of(sub, prompt, defs, depth + 1) for name, sub in props.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [value_of(schema.get("items", {"type": "string"}), prompt, defs, depth + 1)] * count
    if kind == "integer":
        return len(prompt.split())
    if kind == "number":
        return len(prompt.split()) + 0.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return prompt[:60]


def json_text(server: Any, prompt: str, schema: dict[str, Any] | None) -> str:
    """The JSON answer of ``server`` to a request asking for ``schema``."""
    reply = getattr(server, "json_reply", None)
    if reply is not None:
        return str(reply(prompt, schema))
    return json.dumps(value_of(schema, prompt), ensure_ascii=False)
