"""Gemini's request, its schemas and its callers, read the way promptbus reads them."""

import pytest
from aiohttp.test_utils import make_mocked_request

from pipeline.errors import ValidationFailed
from pipeline.ingress.compat.gemini import is_gemini_request
from pipeline.ingress.compat.gemini.answers import block_reason, finish_reason
from pipeline.ingress.compat.gemini.errors import duration
from pipeline.ingress.compat.gemini.openapi import from_openapi
from pipeline.ingress.compat.gemini.requests import to_generate_request
from pipeline.ingress.compat.gemini.wire import GenerateContentRequest, read
from schemas import Role


def translate(body: dict[str, object], stream: bool = False):
    return to_generate_request(read(GenerateContentRequest, body), model="flash", stream=stream)


def ask(text: str = "hi") -> list[dict[str, object]]:
    return [{"role": "user", "parts": [{"text": text}]}]


def test_openapi_types_nullable_and_int64_strings_become_json_schema():
    schema = {
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING", "nullable": True},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": "1"},
            "kind": {"type": "STRING", "enum": ["a", "b"], "nullable": True},
            "either": {"anyOf": [{"type": "INTEGER"}], "nullable": True},
        },
        "required": ["name"],
        "propertyOrdering": ["name", "tags"],
    }

    assert from_openapi(schema) == {
        "type": "object",
        "properties": {
            "name": {"type": ["string", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "kind": {"type": ["string", "null"], "enum": ["a", "b", None]},
            "either": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        "required": ["name"],
    }


def test_system_instruction_turns_and_parts_become_messages():
    request = translate(
        {
            "systemInstruction": {"parts": [{"text": "be"}, {"text": "brief"}]},
            "contents": [
                {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
                {"role": "model", "parts": [{"text": "thinking", "thought": True}, {"text": "c"}]},
                {"parts": [{"text": "d"}]},
            ],
        }
    )

    assert [(m.role, m.content) for m in request.conversation()] == [
        (Role.SYSTEM, "be\nbrief"),
        (Role.USER, "a\nb"),
        (Role.ASSISTANT, "c"),
        (Role.USER, "d"),
    ]


def test_generation_config_becomes_params_and_a_schema():
    request = translate(
        {
            "contents": ask(),
            "generationConfig": {
                "temperature": 0.5,
                "topP": 0.9,
                "topK": 40.0,
                "maxOutputTokens": 12,
                "stopSequences": ["END"],
                "candidateCount": 1,
                "responseMimeType": "application/json",
                "responseSchema": {"type": "OBJECT"},
                "thinkingConfig": {"thinkingBudget": 0},
            },
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
            "labels": {"team": "a"},
        },
        stream=True,
    )

    params = request.params
    assert (params.temperature, params.top_p, params.top_k) == (0.5, 0.9, 40)
    assert (params.max_output_tokens, params.stop) == (12, ("END",))
    assert request.response_schema == {"type": "object"}
    assert request.stream is True


def test_json_without_a_schema_asks_for_any_object():
    request = translate(
        {"contents": ask(), "generationConfig": {"responseMimeType": "application/json"}}
    )

    assert request.response_schema == {"type": "object"}


def test_safety_settings_are_carried_and_empty_ones_are_none():
    harassment = {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}

    carried = translate({"contents": ask(), "safetySettings": [harassment]})
    empty = translate({"contents": ask(), "safetySettings": []})

    assert [s.model_dump() for s in carried.safety_settings or ()] == [harassment]
    assert empty.safety_settings is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"contents": []}, "contents"),
        ({"contents": ask(), "tools": [{"googleSearch": {}}]}, "tools[0].googleSearch"),
        ({"contents": ask(), "cachedContent": "cachedContents/x"}, "cachedContent"),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0].role"),
        ({"contents": [{"parts": [{"text": ""}]}]}, "contents[0].parts"),
        ({"contents": [{"parts": [{"file_data": {"file_uri": "x"}}]}]}, "fileData"),
        ({"contents": [*ask(), {"role": "model", "parts": [{"text": "x"}]}]}, None),
        (
            {"contents": ask(), "generationConfig": {"responseJsonSchema": {"type": "object"}}},
            "generationConfig.responseMimeType",
        ),
    ],
)
def test_requests_promptbus_cannot_serve_are_refused_naming_why(
    body: dict[str, object], field: str | None
):
    with pytest.raises(ValidationFailed) as caught:
        translate(body)

    if field is not None:
        assert field in (caught.value.field or "") + caught.value.message


def test_finish_and_block_reasons_in_gemini_s_names():
    assert [finish_reason(r) for r in ("stop", "max_tokens", "length", "safety")] == [
        "STOP",
        "MAX_TOKENS",
        "MAX_TOKENS",
        "SAFETY",
    ]
    assert finish_reason("content_filter") == "SAFETY"
    assert finish_reason("something_new") == "OTHER"
    assert [block_reason(r) for r in ("safety", "content_filter", "odd")] == [
        "SAFETY",
        "SAFETY",
        "OTHER",
    ]


def test_durations_are_protobuf_json():
    assert [duration(s) for s in (2, 0.5, 1.25)] == ["2s", "0.500s", "1.250s"]


@pytest.mark.parametrize(
    ("headers", "path", "gemini"),
    [
        ({"x-goog-api-key": "k"}, "/v1/models", True),
        ({"x-goog-api-client": "google-genai-sdk/3.6.1"}, "/v1/models", True),
        ({}, "/v1/models?key=k", True),
        ({"Authorization": "Bearer sk", "x-goog-api-client": "x"}, "/v1/models", False),
        ({"Authorization": "Bearer sk"}, "/v1/models", False),
        ({}, "/v1/models", False),
    ],
)
def test_a_gemini_caller_is_told_from_an_openai_one(
    headers: dict[str, str], path: str, gemini: bool
):
    assert is_gemini_request(make_mocked_request("GET", path, headers=headers)) is gemini


def call(name: str = "f", call_id: str | None = None) -> dict[str, object]:
    found: dict[str, object] = {"name": name, "args": {"n": 1}}
    return {"functionCall": {**found, **({"id": call_id} if call_id else {})}}


def result(name: str = "f", call_id: str | None = None) -> dict[str, object]:
    found: dict[str, object] = {"name": name, "response": {"ok": True}}
    return {"functionResponse": {**found, **({"id": call_id} if call_id else {})}}


def test_function_calls_and_responses_become_tool_calls_and_tool_messages():
    request = translate(
        {
            "contents": [
                *ask("go"),
                {"role": "model", "parts": [{"text": "calling"}, call(), call("g", "mine")]},
                {"role": "function", "parts": [result("g"), result(), {"text": "and?"}]},
            ],
            "tools": [
                {"functionDeclarations": [{"name": "f"}, {"name": "g", "parameters": {}}]},
                {
                    "functionDeclarations": [
                        {"name": "h", "parametersJsonSchema": {"type": "object"}}
                    ]
                },
            ],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["g"]}},
        }
    )

    _, model, g, f, last = request.conversation()
    assert (model.role, model.content) == (Role.ASSISTANT, "calling")
    assert [(c.id, c.name, c.arguments) for c in model.tool_calls or ()] == [
        ("call_1_0_f", "f", {"n": 1}),
        ("mine", "g", {"n": 1}),
    ]
    assert [(m.role, m.tool_call_id, m.content) for m in (g, f)] == [
        (Role.TOOL, "mine", '{"ok":true}'),
        (Role.TOOL, "call_1_0_f", '{"ok":true}'),
    ]
    assert (last.role, last.content) == (Role.USER, "and?")
    assert [t.name for t in request.tools or ()] == ["f", "g", "h"]
    assert request.tool_choice == "g"


@pytest.mark.parametrize(
    ("config", "choice"),
    [
        (None, None),
        ({"functionCallingConfig": {"mode": "AUTO"}}, "auto"),
        ({"functionCallingConfig": {"mode": "NONE"}}, "none"),
        ({"functionCallingConfig": {"mode": "ANY"}}, "required"),
    ],
)
def test_function_calling_modes_are_tool_choices(config: object, choice: str | None):
    body = {"contents": ask(), "tools": [{"functionDeclarations": [{"name": "f"}]}]}

    assert translate({**body, "toolConfig": config}).tool_choice == choice


@pytest.mark.parametrize(
    "contents",
    [
        [*ask(), {"role": "user", "parts": [result()]}],
        [*ask(), {"role": "model", "parts": [call("f", "a")]}, {"parts": [result("f", "b")]}],
        [*ask(), {"role": "model", "parts": [call("f")]}, {"parts": [result("g")]}],
        [*ask(), {"role": "user", "parts": [call()]}],
    ],
    ids=["no-call", "wrong-id", "wrong-name", "call-in-a-user-turn"],
)
def test_responses_must_answer_earlier_calls(contents: list[dict[str, object]]):
    with pytest.raises(ValidationFailed):
        translate({"contents": contents})
