"""The OpenAPI document builder: aiohttp paths, raw bodies holding models, a bad table."""

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from pipeline.ingress.openapi import (
    OPERATIONS,
    Operation,
    Param,
    Reply,
    Stream,
    build_document,
    openapi_path,
)
from schemas import GenerateRequest, GenerateResponse, Usage
from schemas.templates import TemplateList

# Shaped like the Gemini-compatible route still to come: a foreign body, one path, two verbs.
GEMINI_LIKE = Operation(
    "POST",
    "/{version:v1|v1beta}/models/{target}",
    "generateContent, streamGenerateContent or countTokens",
    body={"oneOf": [{"type": "object", "properties": {"contents": {"type": "array"}}}]},
    params=(Param("version", "path", {"enum": ["v1", "v1beta"]}),),
    replies=(
        Reply(
            200,
            "The answer",
            {"type": "object", "properties": {"usageMetadata": Usage}},
            Stream("Candidates as they come", {"message": {"type": "object"}}),
        ),
    ),
    errors=(400, 404),
    error_body={"type": "object", "properties": {"error": {"type": "object"}}},
)


def test_aiohttp_paths_become_openapi_paths_and_parameters():
    assert openapi_path("/v1/jobs/{job_id}") == ("/v1/jobs/{job_id}", {"job_id": None})
    assert openapi_path("/{version:v1|v1beta}/models/{target}") == (
        "/{version}/models/{target}",
        {"version": "v1|v1beta", "target": None},
    )
    assert openapi_path(r"/x/{n:\d{1,3}}.json") == ("/x/{n}.json", {"n": r"\d{1,3}"})


def test_an_entry_with_a_foreign_body_is_one_more_row():
    # Given a table of a promptbus route and one with raw JSON Schema bodies
    table = (
        Operation(
            "POST",
            "/v1/generate",
            "Answer",
            body=GenerateRequest,
            replies=(Reply(200, "The answer", GenerateResponse),),
        ),
        GEMINI_LIKE,
    )

    # When the document is built
    document = build_document(table)

    # Then it is valid, and the raw schemas' models are refs into components
    validate(document, cls=OpenAPIV31SpecValidator)
    op = document["paths"]["/{version}/models/{target}"]["post"]
    assert [(p["name"], p["schema"]) for p in op["parameters"]] == [
        ("version", {"enum": ["v1", "v1beta"]}),
        ("target", {"type": "string"}),
    ]
    ok = op["responses"]["200"]["content"]
    usage = ok["application/json"]["schema"]["properties"]["usageMetadata"]
    assert usage == {"$ref": "#/components/schemas/Usage"}
    assert ok["text/event-stream"]["x-events"] == {"message": {"type": "object"}}
    assert op["responses"]["404"]["content"] == op["responses"]["default"]["content"]
    assert {"Usage", "GenerateRequest", "GenerateResponse"} <= set(
        document["components"]["schemas"]
    )


def test_a_regex_path_parameter_keeps_its_regex_as_a_pattern():
    document = build_document(
        [
            Operation(
                "GET",
                "/v1/things/{n:[0-9]+}",
                "A thing",
                replies=(Reply(200, "It", TemplateList),),
            )
        ]
    )

    (param,) = document["paths"]["/v1/things/{n}"]["get"]["parameters"]
    assert param == {
        "name": "n",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^(?:[0-9]+)$"},
    }


def test_a_route_twice_or_a_parameter_the_path_lacks_is_refused():
    twice = Operation("GET", "/v1/x/{a}", "X", replies=(Reply(200, "X"),))
    with pytest.raises(ValueError, match="twice"):
        build_document([twice, Operation("GET", "/v1/x/{a:.+}", "X", replies=(Reply(200, "X"),))])
    stray = Param("b", "path", {"type": "string"})
    with pytest.raises(ValueError, match="no path parameter"):
        build_document([Operation("GET", "/v1/x/{a}", "X", replies=(), params=(stray,))])


def test_no_documented_field_is_both_required_and_nullable():
    # Jobs and their attempts are sent with their None fields left out, so a field the
    # schema requires must never be None.
    def nullable(schema: dict) -> bool:
        kinds = schema.get("type")
        return (
            kinds == "null"
            or "null" in (kinds or [])
            or any(map(nullable, schema.get("anyOf", [])))
        )

    components = build_document(OPERATIONS)["components"]["schemas"]
    both = [
        f"{name}.{field}"
        for name, schema in components.items()
        for field in schema.get("required", [])
        if nullable(schema["properties"][field])
    ]
    assert both == []
