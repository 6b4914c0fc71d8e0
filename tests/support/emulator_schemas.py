"""JSON Schemas covering the keywords the emulator's document generator handles."""

from typing import Any

import jsonschema

FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER

OBJECT = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "count": {"type": "integer"}},
    "required": ["title", "count"],
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "object": OBJECT,
    "closed object": {**OBJECT, "additionalProperties": False},
    "formats": {
        "type": "object",
        "properties": {
            name: {"type": "string", "format": name}
            for name in ("date", "date-time", "email", "uri", "uuid", "time")
        },
        "required": ["date", "email"],
    },
    "integer bounds": {
        "type": "object",
        "properties": {
            "low": {"type": "integer", "minimum": 10, "maximum": 20},
            "high": {"type": "integer", "maximum": -3},
            "exclusive": {"type": "integer", "exclusiveMinimum": 5},
            "multiple": {"type": "integer", "minimum": 30, "multipleOf": 7},
        },
        "required": ["low", "high", "exclusive", "multiple"],
    },
    "number bounds": {
        "type": "object",
        "properties": {
            "small": {"type": "number", "maximum": 1},
            "negative": {"type": "number", "exclusiveMaximum": 0},
            "between": {"type": "number", "exclusiveMinimum": 2, "exclusiveMaximum": 3},
        },
        "required": ["small", "negative", "between"],
    },
    "strings": {
        "type": "object",
        "properties": {
            "long": {"type": "string", "minLength": 50},
            "short": {"type": "string", "maxLength": 3},
        },
        "required": ["long", "short"],
    },
    "arrays": {
        "type": "object",
        "properties": {
            "tags": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 3,
                "uniqueItems": True,
            },
            "none": {"type": "array", "items": {"type": "integer"}, "maxItems": 0},
            "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}]},
        },
        "required": ["tags", "none", "pair"],
    },
    "enum and const": {
        "type": "object",
        "properties": {"colour": {"enum": ["red", "green"]}, "version": {"const": 2}},
        "required": ["colour", "version"],
    },
    "root enum": {"enum": ["yes", "no"]},
    "root string": {"type": "string"},
    "root integer": {"type": "integer"},
    "root array": {"type": "array", "items": OBJECT},
    "anyOf and oneOf": {
        "type": "object",
        "properties": {
            "either": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "one": {"oneOf": [{"type": "boolean"}, {"type": "string"}]},
        },
        "required": ["either", "one"],
    },
    "root anyOf": {
        "anyOf": [{"type": "integer"}, {"$ref": "#/$defs/S"}],
        "$defs": {"S": {"type": "string"}},
    },
    "type list": {
        "type": "object",
        "properties": {"maybe": {"type": ["null", "integer"]}},
        "required": ["maybe"],
    },
    "$defs ref": {
        "$defs": {"Item": OBJECT},
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
        "required": ["items"],
    },
    "definitions ref": {
        "definitions": {"Point": {**OBJECT, "properties": {"x": {"type": "number"}}}},
        "$ref": "#/definitions/Point",
    },
    "allOf": {
        "allOf": [OBJECT, {"properties": {"extra": {"type": "boolean"}}, "required": ["extra"]}],
    },
    "recursive tree": {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
                "required": ["name"],
            }
        },
        "$ref": "#/$defs/Node",
    },
}


def validate(document: Any, schema: dict[str, Any]) -> None:
    """Raise ValidationError unless document follows schema (formats checked too)."""
    jsonschema.validate(document, schema, format_checker=FORMATS)
