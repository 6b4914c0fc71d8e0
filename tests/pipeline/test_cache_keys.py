"""Cache keys change with everything that shapes an answer, and nothing else."""

from typing import Any

import pytest

from pipeline.cache.keys import cache_key
from pipeline.errors import ValidationFailed
from schemas import GenerateRequest

MODEL = "gemini-2.5-flash"


def key(tenant: str = "default", model: str = "gemini-2.5-flash", **body) -> str:
    body.setdefault("model", "flash")
    if "messages" not in body:
        body.setdefault("prompt", "hi")
    request = GenerateRequest.model_validate(body)
    return cache_key(request, tenant=tenant, provider="gemini", provider_model=model)


def test_key_ignores_cache_controls():
    assert key() == key(cache={"ttl": 5, "no_store": True, "max_age": 3})


def test_unset_params_equal_absent_params():
    assert key() == key(params={}) == key(params={"temperature": None})


def test_key_changes_with_tenant_model_text_and_params():
    base = key()
    others = {
        key(tenant="acme"),
        key(model="gemini-2.5-pro"),
        key(prompt="hi!"),
        key(system="sys"),
        key(params={"temperature": 0.0}),
        key(params={"max_output_tokens": 1}),
        key(params={"stop": ["a"]}),
        key(params={"stop": ["a", "b"]}),
    }
    assert base not in others
    assert len(others) == 8


def test_tenant_is_visible_in_the_key_namespace():
    assert key(tenant="acme").startswith("v1:acme:")


def test_messages_role_matters():
    as_user = key(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    as_assistant = key(
        messages=[{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]
    )
    assert as_user != as_assistant


def test_response_schema_is_keyed_canonically():
    schema = {"type": "object", "properties": {"a": {"type": "string", "minLength": 1}}}
    reordered = {"properties": {"a": {"minLength": 1, "type": "string"}}, "type": "object"}

    assert key(response_schema=schema) == key(response_schema=reordered)
    assert key(response_schema=schema) != key()
    assert key(response_schema=schema) != key(response_schema={**schema, "required": ["a"]})


def test_a_request_without_safety_settings_keeps_the_key_it_had():
    # The key of this request before safety settings existed (computed on that code).
    request = GenerateRequest.model_validate(
        {
            "model": "flash",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ],
            "params": {"temperature": 0.5},
            "response_schema": {"type": "object"},
        }
    )
    before = "v1:default:99cc591793c20578a0dc5a6f834a93c551580840c8b38989095b0a8d67ac7669"

    assert cache_key(request, tenant="default", provider="gemini", provider_model=MODEL) == before
    assert key() == key(safety_settings=None) == key(safety_settings=[])


def test_safety_settings_are_keyed_in_any_order():
    harassment = {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}
    hate = {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}

    assert key(safety_settings=[harassment, hate]) == key(safety_settings=[hate, harassment])
    assert key(safety_settings=[harassment]) != key()
    assert key(safety_settings=[harassment]) != key(
        safety_settings=[{**harassment, "threshold": "BLOCK_ONLY_HIGH"}]
    )


# Keys computed before requests could carry tools: a request without them must keep its key.
PINNED = [
    ({"prompt": "hi"}, "b014b57889c436f7cf486ceeee2902901a90e9d5eff517434d88c80638255a3a"),
    (
        {
            "prompt": "hi",
            "system": "be brief",
            "params": {"temperature": 0.5, "top_k": 3, "max_output_tokens": 10, "stop": ["x"]},
        },
        "5adc259bb16d86f3a43361a98e3cb7ebae72848446d196f16fdff6301f656bd3",
    ),
    (
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
            ],
            "response_schema": {"type": "object"},
        },
        "e651600106ccfc5dc8c45c07d610bc09959a384bb70e873613c97b7b08d672d8",
    ),
    (
        {
            "messages": [{"role": "user", "content": "x"}],
            "template": {"id": "greet", "version": 2, "variables": {"name": "bob"}},
        },
        "c00bcf83072afc87ad488f933e2c6482605949492b6963cf184b79a88ca46f91",
    ),
]


@pytest.mark.parametrize(("body", "digest"), PINNED)
def test_keys_of_requests_without_tools_are_unchanged(body: dict[str, Any], digest: str):
    assert key(tenant="acme", **body) == f"v1:acme:{digest}"


WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
ASK = {"role": "user", "content": "weather?"}


def turn(call_id: str = "call_1", city: str = "Oslo", result: str = "sunny") -> list[dict]:
    """A question, the assistant's call, and the tool's result."""
    call = {"id": call_id, "name": "get_weather", "arguments": {"city": city}}
    return [
        ASK,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]


def test_every_tool_field_changes_the_key():
    base = key(prompt="weather?", tools=[WEATHER])
    variants = {
        key(prompt="weather?"),
        key(prompt="weather?", tools=[{**WEATHER, "description": "the weather"}]),
        key(prompt="weather?", tools=[{**WEATHER, "parameters": {"type": "object"}}]),
        key(prompt="weather?", tools=[WEATHER, {"name": "get_time"}]),
        key(prompt="weather?", tools=[WEATHER], tool_choice="auto"),
        key(prompt="weather?", tools=[WEATHER], tool_choice="required"),
        key(prompt="weather?", tools=[WEATHER], tool_choice="get_weather"),
        key(prompt="weather?", tools=[WEATHER], parallel_tool_calls=False),
        key(prompt="weather?", tools=[WEATHER], params={"seed": 1}),
        key(prompt="weather?", tools=[WEATHER], params={"seed": 2}),
    }
    assert base not in variants
    assert len(variants) == 10


def test_tool_turns_change_the_key():
    keys = {
        key(messages=turn()),
        key(messages=turn(call_id="call_2")),
        key(messages=turn(city="Bergen")),
        key(messages=turn(result="rain")),
        key(messages=[ASK, {"role": "assistant", "content": "calling"}, ASK]),
    }
    assert len(keys) == 5


def test_user_and_key_order_of_arguments_do_not_change_the_key():
    reordered = turn()
    reordered[1] = {
        "role": "assistant",
        "tool_calls": [{"arguments": {"city": "Oslo"}, "name": "get_weather", "id": "call_1"}],
    }

    assert key(messages=turn(), tools=[WEATHER]) == key(
        messages=reordered, tools=[WEATHER], user="someone"
    )
    assert key(prompt="hi", user="a") == key(prompt="hi", user="b") == key(prompt="hi")


def test_unset_tool_fields_equal_absent_ones():
    assert key() == key(
        tools=None, tool_choice=None, parallel_tool_calls=None, params={"seed": None}
    )


def test_arguments_json_cannot_carry_are_refused_naming_the_field():
    call = {"id": "c", "name": "f", "arguments": {"n": 2**70}}
    messages = [
        ASK,
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c", "content": "r"},
    ]

    with pytest.raises(ValidationFailed) as refused:
        key(messages=messages)

    assert refused.value.field == "messages"
