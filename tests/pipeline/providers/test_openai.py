"""The OpenAI-compatible provider over real HTTP: the real ChatOpenAI against the emulator."""

import socket
from collections.abc import AsyncIterator

import orjson
import pytest
from pydantic import SecretStr

from pipeline.errors import (
    ContentBlocked,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from pipeline.providers.openai import OpenAIProvider
from schemas import GenerationParams
from tests.support.emulator import Emulator
from tests.support.providers import PARAMS, PERSON, ask, openai_on

MODEL = "gpt-4o-mini"


@pytest.fixture
async def openai(emulator: Emulator) -> AsyncIterator[OpenAIProvider]:
    async with openai_on(f"{emulator.base_url}/v1") as provider:
        yield provider


async def test_answers_with_usage_and_finish_reason(openai: OpenAIProvider):
    generation = await openai.generate(MODEL, ask("hello there", system="be brief"), PARAMS)

    assert generation.provider == "openai"
    assert generation.provider_model == MODEL
    assert generation.text.startswith(f"[{MODEL}] hello there #")
    assert generation.finish_reason == "stop"
    assert (generation.usage.input_tokens, generation.usage.output_tokens) == (4, 4)
    assert generation.usage.total_tokens == 8


async def test_params_reach_the_model(openai: OpenAIProvider):
    # top_k has no OpenAI equivalent: it is left out rather than sent and refused.
    params = GenerationParams(max_output_tokens=2, temperature=0.5, top_p=0.9, top_k=3)

    generation = await openai.generate(MODEL, ask("one two three four"), params)

    assert generation.finish_reason == "length"
    assert generation.usage.output_tokens == 2


async def test_a_filtered_answer_is_content_filter(openai: OpenAIProvider):
    generation = await openai.generate(MODEL, ask("x [[emulator:block=safety]]"), PARAMS)

    assert (generation.finish_reason, generation.text) == ("content_filter", "")


async def test_a_filtered_prompt_is_content_blocked(openai: OpenAIProvider):
    with pytest.raises(ContentBlocked) as caught:
        await openai.generate(MODEL, ask("x [[emulator:block=prompt]]"), PARAMS)

    assert caught.value.finish_reason == "content_filter"
    assert not caught.value.retryable


async def test_429_carries_the_retry_delay(openai: OpenAIProvider, emulator: Emulator):
    before = await emulator.calls()

    with pytest.raises(UpstreamUnavailable) as caught:
        await openai.generate(MODEL, ask("x [[emulator:status=429,retry_after=1.5]]"), PARAMS)

    assert caught.value.retryable
    assert "429" in caught.value.message
    # From retry-after-ms: 1500 (Retry-After says 2, rounded up to whole seconds).
    assert caught.value.retry_after_s == pytest.approx(1.5)
    # One upstream call: max_retries=0, the SDK does not retry behind promptbus's back.
    assert await emulator.calls() == before + 1


async def test_503_is_retryable(openai: OpenAIProvider):
    with pytest.raises(UpstreamUnavailable) as caught:
        await openai.generate(MODEL, ask("x [[emulator:status=503]]"), PARAMS)

    assert caught.value.retryable
    assert caught.value.retry_after_s is None


async def test_400_is_not_retryable(openai: OpenAIProvider):
    with pytest.raises(UpstreamRejected) as caught:
        await openai.generate(MODEL, ask("x [[emulator:no-such-directive]]"), PARAMS)

    assert not caught.value.retryable
    assert "400" in caught.value.message


async def test_a_reset_connection_is_unavailable(openai: OpenAIProvider, emulator: Emulator):
    before = await emulator.calls()

    with pytest.raises(UpstreamUnavailable) as caught:
        await openai.generate(MODEL, ask("x [[emulator:reset]]"), PARAMS)

    assert caught.value.retryable
    assert "cannot reach the model provider" in caught.value.message
    assert await emulator.calls() == before + 1


async def test_a_slow_answer_is_a_timeout(emulator: Emulator):
    async with openai_on(f"{emulator.base_url}/v1", timeout_s=0.2) as openai:
        with pytest.raises(UpstreamTimeout) as caught:
            await openai.generate(MODEL, ask("x [[emulator:delay=1000]]"), PARAMS)

    assert caught.value.retryable


async def test_json_mode_returns_json_matching_the_schema(openai: OpenAIProvider):
    generation = await openai.generate(
        MODEL, ask("describe someone"), PARAMS, response_schema=PERSON
    )

    answer = orjson.loads(generation.text)
    assert isinstance(answer["name"], str)
    assert isinstance(answer["age"], int)
    assert generation.json_ is None


async def test_nobody_listening_is_unavailable_and_not_ready():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    async with openai_on(closed) as openai:
        with pytest.raises(UpstreamUnavailable):
            await openai.generate(MODEL, ask("hi"), PARAMS)
        ready = await openai.ready()

    assert ready is False


async def test_ready_when_the_endpoint_answers(openai: OpenAIProvider):
    assert await openai.ready() is True


@pytest.mark.parametrize("status", [401, 403, 404, 422])
async def test_other_4xx_are_rejections(openai: OpenAIProvider, status: int):
    with pytest.raises(UpstreamRejected) as caught:
        await openai.generate(MODEL, ask(f"x [[emulator:status={status}]]"), PARAMS)

    assert not caught.value.retryable
    assert str(status) in caught.value.message


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (408, UpstreamTimeout),
        (504, UpstreamTimeout),
        (500, UpstreamUnavailable),
        (502, UpstreamUnavailable),
    ],
)
async def test_other_retryable_statuses(openai: OpenAIProvider, status: int, error: type):
    with pytest.raises(error) as caught:
        await openai.generate(MODEL, ask(f"x [[emulator:status={status}]]"), PARAMS)

    assert caught.value.retryable


def test_the_client_makes_one_attempt_with_a_connect_timeout():
    provider = OpenAIProvider(
        api_key=SecretStr("k"), base_url="http://127.0.0.1:9/v1", timeout_s=30, connect_timeout_s=2
    )

    client = provider.model(MODEL).root_async_client

    assert client.max_retries == 0
    assert (client.timeout.connect, client.timeout.read) == (2, 30)
