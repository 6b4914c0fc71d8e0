"""Gemini's `responseSchema` (an OpenAPI 3.0 subset) as the JSON Schema promptbus carries."""

from typing import Any, Final

# Keywords holding one subschema, a list of them, or a map of them.
_ONE: Final = frozenset({"items", "not", "additionalProperties"})
_MANY: Final = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_MAP: Final = frozenset({"properties", "$defs", "definitions"})
# int64 fields, which proto JSON may carry as strings ("3").
_INTEGERS: Final = frozenset(
    {"minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"}
)
# Gemini's own keywords with no JSON Schema meaning (the order it emits properties in).
_DROPPED: Final = frozenset({"nullable", "propertyOrdering", "property_ordering"})


def from_openapi(schema: Any) -> Any:
    """`schema` as JSON Schema: type names lower-cased, `nullable` as a null type.

    Everything JSON Schema shares with OpenAPI (properties, required, enum, format,
    description, minimum...) is kept as it is.
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED:
            continue
        if key == "type" and isinstance(value, str):
            out[key] = value.lower()
        elif key in _ONE:
            out[key] = from_openapi(value)
        elif key in _MANY and isinstance(value, list):
            out[key] = [from_openapi(item) for item in value]
        elif key in _MAP and isinstance(value, dict):
            out[key] = {name: from_openapi(sub) for name, sub in value.items()}
        elif key in _INTEGERS and isinstance(value, str) and value.isdigit():
            out[key] = int(value)
        else:
            out[key] = value
    if schema.get("nullable") is True:
        _allow_null(out)
    return out


def _allow_null(schema: dict[str, Any]) -> None:
    """Let `schema` (already JSON Schema) also match null."""
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
    elif "anyOf" in schema:
        schema["anyOf"] = [*schema["anyOf"], {"type": "null"}]
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
