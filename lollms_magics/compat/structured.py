"""lollms-client's ``generate_structured_content``, over :func:`Session.ask(..., schema=...)`.

lollms-client 1.7 takes ``schema`` (a JSON Schema dict or its JSON text; a
dict of properties alone is wrapped into an object, as it does); its 0.x
releases took a ``template`` (or ``output_format``): an example of the
answer, such as ``{"name": "string", "age": 0}``. Both spellings are taken
here; a template becomes the schema of its shape (every key required, its
values' types, or the type a value names: ``"string"``, ``"integer"``...).
The schema may also be anything :func:`~lollms_magics.core.schemas.as_schema`
takes (a dataclass, a pydantic model, a short form).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["course_order", "course_schema", "pydantic_class", "schema_of_template"]

# The type a template's string value may name (lollms-client's examples write "string", "integer").
_NAMED = {
    "string": "string", "str": "string", "text": "string", "integer": "integer", "int": "integer",
    "number": "number", "float": "number", "boolean": "boolean", "bool": "boolean",
    "array": "array", "list": "array", "object": "object", "dict": "object",
}


def course_order(images: Any, schema: Any) -> tuple[Any, Any]:
    """``(images, schema)`` in 1.7's order, whichever order the call used.

    lollms-client 1.7 takes ``(prompt, images, schema, ...)`` and 1.9
    ``(prompt, schema, images, ...)``. Images are a list (or None), never a
    dict, JSON text or a class, so a schema in the images' place is moved.
    """
    swapped = isinstance(images, (dict, str, type))
    if swapped and (schema is None or isinstance(schema, (list, tuple))):
        return schema, images
    return images, schema


def pydantic_class(model: Any) -> Any:
    """The pydantic model class of ``model`` (a class or an instance), else ``TypeError``."""
    cls = model if isinstance(model, type) else type(model)
    if not all(callable(getattr(cls, name, None)) for name in ("model_json_schema", "model_validate")):
        raise TypeError("pydantic_model must be a Pydantic BaseModel class or instance")
    return cls


def course_schema(schema: Any, template: Any) -> Any:
    """The schema ``generate_structured_content`` asks for, from its ``schema`` or ``template``.

    Raises ``TypeError`` for a template that is neither a dict, a list nor
    JSON text, as lollms-client does.
    """
    if schema is None and template is not None:
        return schema_of_template(template)
    if schema is None:
        return {"type": "object"}  # lollms-client's empty schema: any JSON object
    if isinstance(schema, dict) and _properties_only(schema):
        return {"type": "object", "properties": schema, "required": list(schema)}
    return schema


def _properties_only(schema: dict[str, Any]) -> bool:
    """lollms-client's rule: no "type", no "properties", and only dicts as values: it lists properties."""
    return bool(schema) and "type" not in schema and "properties" not in schema and all(
        isinstance(v, dict) for v in schema.values()
    )


def schema_of_template(template: Any) -> dict[str, Any]:
    """The JSON Schema of an example answer: ``{"name": "string", "age": 0}`` asks for a string and an int."""
    if isinstance(template, str):
        try:
            template = json.loads(template)
        except ValueError:
            raise TypeError("template must be a dict, a list or a JSON string") from None
    if not isinstance(template, (dict, list)):
        raise TypeError("template must be a dict, a list or a JSON string")
    return _shape(template)


def _shape(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {
            "type": "object", "properties": {str(k): _shape(v) for k, v in value.items()},
            "required": [str(k) for k in value], "additionalProperties": False,
        }
    if isinstance(value, list):
        return {"type": "array", **({"items": _shape(value[0])} if value else {})}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": _NAMED.get(value.strip().lower(), "string")}
    return {}
