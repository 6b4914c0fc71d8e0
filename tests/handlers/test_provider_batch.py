"""Gemini Batch bridge outcomes as OpenAI batch output lines, from a real run on the emulator."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai.types.chat import ChatCompletion

from handlers.provider_batch import Endpoint, is_error_line, output_line
from pipeline.catalog import ModelCatalog
from pipeline.emulator import EmulatorConfig
from pipeline.providers.batch_outcomes import BatchItem, BridgeResult, PollPolicy
from pipeline.providers.setup import gemini_batch_client
from schemas import ErrorBody, GenerateRequest, GenerateResponse
from tests.support.emulator import running
from tests.support.settings import settings_for_test

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
ITEMS = [
    BatchItem("answered", GenerateRequest(model="flash", prompt="hello there")),
    BatchItem("limited", GenerateRequest(model="flash", prompt="[[emulator:status=429]] x")),
    BatchItem("blocked", GenerateRequest(model="flash", prompt="[[emulator:block=safety]] x")),
    BatchItem("json", GenerateRequest(model="flash", prompt="n", response_schema=SCHEMA)),
    BatchItem(
        "bad_json",
        GenerateRequest(
            model="flash", prompt="[[emulator:json=invalid]] n", response_schema=SCHEMA
        ),
    ),
]


@pytest.fixture
async def result() -> AsyncIterator[BridgeResult]:
    """One bridge run of ITEMS on the emulator."""
    settings = settings_for_test()
    catalog = ModelCatalog.from_file(settings.models_file)
    policy = PollPolicy(initial_s=0.01, max_s=0.05)
    async with running(EmulatorConfig(batch_step_ms=20)) as emu:
        client = gemini_batch_client(settings, catalog, emu.base_url, policy)
        try:
            yield await client.run(ITEMS)
        finally:
            await client.aclose()


def lines(result: BridgeResult, endpoint: Endpoint) -> dict[str, dict[str, Any]]:
    return {
        o.custom_id: output_line(o, endpoint, line_id=f"batch_req_{o.custom_id}", request_id="r1")
        for o in result.outcomes
    }


async def test_an_answer_is_a_chat_completion_the_openai_sdk_reads(result: BridgeResult) -> None:
    line = lines(result, "/v1/chat/completions")["answered"]

    assert (line["id"], line["custom_id"], line["error"]) == (
        "batch_req_answered",
        "answered",
        None,
    )
    assert (line["response"]["status_code"], line["response"]["request_id"]) == (200, "r1")
    completion = ChatCompletion.model_validate(line["response"]["body"])
    assert completion.model == "flash"
    assert completion.choices[0].message.content is not None
    assert completion.choices[0].message.content.startswith("[gemini-2.5-flash] hello there #")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 6
    # The promptbus extension carries the batch price
    outcome = result.outcomes[0]
    assert outcome.answer is not None
    body = line["response"]["body"]
    assert body["promptbus"]["cost"] == outcome.answer.cost.model_dump()
    assert not is_error_line(line)


async def test_an_answer_is_a_generate_response(result: BridgeResult) -> None:
    line = lines(result, "/v1/generate")["answered"]

    response = GenerateResponse.model_validate(line["response"]["body"])
    assert (response.id, response.model, response.provider_model) == (
        "gen_r1",
        "flash",
        "gemini-2.5-flash",
    )
    assert response.routing is not None
    assert response.routing.deployment == "gemini/gemini-2.5-flash"
    assert response.cache.hit is False


async def test_a_structured_answer_is_parsed_and_a_mismatch_is_an_error_line(
    result: BridgeResult,
) -> None:
    by_id = lines(result, "/v1/generate")

    good = GenerateResponse.model_validate(by_id["json"]["response"]["body"])
    assert isinstance(good.json_, dict)
    assert isinstance(good.json_["n"], int)
    bad = by_id["bad_json"]
    assert bad["response"]["status_code"] == 502
    error = ErrorBody.model_validate(bad["response"]["body"]).error
    assert error.type == "invalid_model_output"
    assert is_error_line(bad)


async def test_failures_carry_each_routes_own_status_and_error_body(result: BridgeResult) -> None:
    chat, generate = lines(result, "/v1/chat/completions"), lines(result, "/v1/generate")

    # A rate-limited item: 503 upstream_unavailable, as either route answers it
    assert generate["limited"]["response"]["status_code"] == 503
    assert generate["limited"]["response"]["body"]["error"]["type"] == "upstream_unavailable"
    assert chat["limited"]["response"]["status_code"] == 503
    assert chat["limited"]["response"]["body"]["error"]["type"] == "server_error"

    # A blocked item: 422 on promptbus's route, 400 content_filter on OpenAI's
    assert generate["blocked"]["response"]["status_code"] == 422
    assert chat["blocked"]["response"]["status_code"] == 400
    assert chat["blocked"]["response"]["body"]["error"]["code"] == "content_filter"
    assert all(is_error_line(line) for line in (chat["limited"], chat["blocked"]))


async def test_an_item_the_provider_never_answered_has_an_error_and_no_response() -> None:
    # Given a cancelled bridge batch
    settings = settings_for_test()
    catalog = ModelCatalog.from_file(settings.models_file)
    async with running(EmulatorConfig(batch_step_ms=60_000)) as emu:
        client = gemini_batch_client(settings, catalog, emu.base_url, PollPolicy(initial_s=0.01))
        try:
            submitted = await client.submit(ITEMS[:1])
            await client.cancel(submitted.name)
            cancelled = await client.wait(submitted)
        finally:
            await client.aclose()

    # Then its line has no response and a batch_cancelled error, and goes to the error file
    line = output_line(cancelled.outcomes[0], "/v1/chat/completions")
    assert line["response"] is None
    assert line["error"]["code"] == "batch_cancelled"
    assert line["id"].startswith("batch_req_")
    assert is_error_line(line)
