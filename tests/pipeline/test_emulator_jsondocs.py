"""Tests of the emulator's schema-driven JSON documents: valid, invalid and malformed."""

import json
from typing import Any

import jsonschema
import orjson
import pytest

from pipeline.emulator.answers import malformed_text
from pipeline.emulator.gemini_requests import from_openapi
from pipeline.emulator.jsondocs import invalid_document, valid_document
from tests.support.emulator_schemas import SCHEMAS, validate


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_valid_document_follows_the_schema(schema: dict[str, Any]) -> None:
    document = valid_document(schema, "some echoed words")

    validate(document, schema)
    assert valid_document(schema, "some echoed words") == document


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_invalid_document_is_json_that_breaks_the_schema(schema: dict[str, Any]) -> None:
    document = invalid_document(schema, "some echoed words")

    orjson.dumps(document)
    with pytest.raises(jsonschema.ValidationError):
        validate(document, schema)


@pytest.mark.parametrize("schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_malformed_text_is_not_json(schema: dict[str, Any]) -> None:
    text = orjson.dumps(valid_document(schema, "words")).decode()

    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed_text(text))


def test_strings_come_from_the_echo() -> None:
    assert valid_document({"type": "string"}, "the echo") == "the echo"
    assert valid_document({"type": "string"}, "") == "text"


def test_openapi_subset_becomes_json_schema() -> None:
    openapi = {
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING", "title": "Name"},
            "kind": {"type": "STRING", "format": "enum", "enum": ["x", "y"]},
            "inner": {
                "type": "OBJECT",
                "nullable": True,
                "properties": {"x": {"type": "INTEGER"}},
                "required": ["x"],
            },
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": "2"},
        },
        "required": ["name", "kind", "tags"],
        "propertyOrdering": ["name", "kind", "inner", "tags"],
    }

    converted = from_openapi(openapi)

    assert converted == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "title": "Name"},
            "kind": {"type": "string", "format": "enum", "enum": ["x", "y"]},
            "inner": {
                "type": ["object", "null"],
                "properties": {"x": {"type": "integer"}},
                "required": ["x"],
            },
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        },
        "required": ["name", "kind", "tags"],
    }
    validate(valid_document(converted, "w"), converted)
