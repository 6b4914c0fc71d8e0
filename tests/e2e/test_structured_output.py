"""Structured output end to end: a response_schema gets JSON that matches it, or a clear error."""

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.job_env import job_env
from tests.support.resilience import FAST, calls_by_model
from tests.support.unique import new_id

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "score": {"type": "integer", "minimum": 0, "maximum": 10},
    },
    "required": ["title", "tags", "score"],
    "additionalProperties": False,
}


def _ask(model: str, directive: str = "", schema: dict[str, Any] | None = None) -> dict[str, Any]:
    prompt = f"{new_id('json')} describe a cat {directive}".strip()
    return {"model": model, "prompt": prompt, "response_schema": schema or SCHEMA}


@pytest.fixture
async def gateway(start_gateway: GatewayFactory, config_dir: Path) -> Gateway:
    return await start_gateway(config_dir=config_dir, **FAST)


@pytest.mark.parametrize("model", ["test-primary", "test-openai"])
async def test_a_valid_answer_comes_back_parsed_in_json(
    gateway: Gateway, emulator: Emulator, model: str
) -> None:
    reply = await gateway.generate(_ask(model))

    assert reply.status == 200, reply.body
    jsonschema.validate(reply.body["json"], SCHEMA)
    assert reply.body["routing"]["attempts"] == 1
    assert (await calls_by_model(emulator))[model] == 1


@pytest.mark.parametrize("directive", ["invalid_then_valid", "malformed_then_valid"])
async def test_an_invalid_answer_is_repaired_once(
    gateway: Gateway, emulator: Emulator, directive: str
) -> None:
    reply = await gateway.generate(_ask("test-primary", f"[[emulator:json={directive}]]"))

    assert reply.status == 200, reply.body
    jsonschema.validate(reply.body["json"], SCHEMA)
    assert reply.body["routing"]["attempts"] == 2
    assert (await calls_by_model(emulator))["test-primary"] == 2


@pytest.mark.parametrize("directive", ["invalid", "malformed"])
async def test_an_answer_still_invalid_after_the_repair_is_a_502(
    gateway: Gateway, emulator: Emulator, directive: str
) -> None:
    body = _ask("test-primary", f"[[emulator:json={directive}]]")

    reply = await gateway.generate(body)

    assert reply.status == 502, reply.body
    error = reply.body["error"]
    assert error["type"] == "invalid_model_output"
    assert error["retryable"] is False
    assert error["attempts"] == 2
    assert (await calls_by_model(emulator))["test-primary"] == 2
    # and nothing was cached: the same request goes upstream again
    again = await gateway.generate(body)
    assert again.status == 502
    assert (await calls_by_model(emulator))["test-primary"] == 4


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "objekt"},
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
        {"type": "object", "required": "title"},
    ],
)
async def test_an_invalid_schema_is_a_422_and_calls_nobody(
    gateway: Gateway, emulator: Emulator, schema: dict[str, Any]
) -> None:
    reply = await gateway.generate(_ask("test-primary", schema=schema))

    assert reply.status == 422, reply.body
    assert reply.body["error"]["field"] == "response_schema"
    assert await emulator.calls() == 0


async def test_the_schema_is_part_of_the_cache_key(gateway: Gateway, emulator: Emulator) -> None:
    body = _ask("test-primary")
    other = {**body, "response_schema": {**SCHEMA, "description": "another schema"}}

    first, second, third = [await gateway.generate(b) for b in (body, body, other)]

    assert [r.status for r in (first, second, third)] == [200, 200, 200]
    assert [r.body["cache"]["hit"] for r in (first, second, third)] == [False, True, False]
    assert second.body["json"] == first.body["json"]


async def test_structured_output_on_the_job_path(config_dir: Path) -> None:
    async with job_env("memory", config_dir=config_dir, **FAST) as env:
        good = await env.submit(_ask("test-primary", "[[emulator:json=invalid_then_valid]]"))
        bad = await env.submit(_ask("test-primary", "[[emulator:json=malformed]]"))
        assert good.status == bad.status == 202

        repaired = await env.wait_job(good.body["id"], 20)
        failed = await env.wait_job(bad.body["id"], 20)

        assert repaired.body["state"] == "succeeded", repaired.body
        jsonschema.validate(repaired.body["result"]["json"], SCHEMA)
        assert repaired.body["result"]["routing"]["attempts"] == 2
        assert failed.body["state"] == "failed", failed.body
        assert failed.body["error"]["type"] == "invalid_model_output"
        assert failed.body["error"]["attempts"] == 2


async def test_an_invalid_schema_in_a_job_is_a_422_and_queues_nothing(config_dir: Path) -> None:
    async with job_env("memory", config_dir=config_dir, **FAST) as env:
        reply = await env.submit(_ask("test-primary", schema={"type": 12}))

        assert reply.status == 422, reply.body
        assert reply.body["error"]["field"] == "response_schema"
        listed = await env.get("/v1/jobs")
        assert listed.body["data"] == []
