"""The official `openai` SDK and LangChain's ChatOpenAI, unchanged, against promptbus."""

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from langchain_openai import ChatOpenAI

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="any", max_retries=0)
    async with sdk:
        yield sdk


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


@pytest.mark.parametrize("model", ["flash", "gpt-4o-mini"])
async def test_a_completion_answers_with_usage_and_the_second_is_cached(
    client: openai.AsyncOpenAI, emulator: Emulator, model: str
):
    first = await client.chat.completions.with_raw_response.create(model=model, messages=ask("hi"))
    completion = first.parse()

    assert completion.object == "chat.completion"
    assert completion.model == model
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert first.headers["x-cache"] == "MISS"
    assert first.headers["x-request-id"]

    again = await client.chat.completions.with_raw_response.create(model=model, messages=ask("hi"))
    assert again.headers["x-cache"] == "HIT"
    assert "age" in again.headers
    assert again.parse().choices[0].message.content == choice.message.content
    assert await emulator.calls() == 1


async def test_a_stream_sends_chunks_usage_and_done(client: openai.AsyncOpenAI, emulator: Emulator):
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=ask("stream me"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])

    # The stream was stored: a plain request gets the same text from the cache
    plain = await client.chat.completions.create(model="gpt-4o-mini", messages=ask("stream me"))
    assert plain.choices[0].message.content == text
    # and a streamed request replays it
    replay = await client.chat.completions.create(
        model="gpt-4o-mini", messages=ask("stream me"), stream=True
    )
    replayed = "".join([c.choices[0].delta.content or "" async for c in replay if c.choices])
    assert replayed == text
    assert await emulator.calls() == 1


async def test_fifty_identical_streams_make_one_call(
    client: openai.AsyncOpenAI, emulator: Emulator
):
    async def one() -> str:
        stream = await client.chat.completions.create(
            model="flash", messages=ask("all at once [[emulator:delay=300]]"), stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    texts = await asyncio.gather(*(one() for _ in range(50)))
    assert len(set(texts)) == 1
    assert texts[0]
    assert await emulator.calls() == 1


async def test_a_json_schema_answer_is_structured(client: openai.AsyncOpenAI):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    }
    completion = await client.chat.completions.create(
        model="flash",
        messages=ask("plan a trip"),
        response_format={"type": "json_schema", "json_schema": {"name": "trip", "schema": schema}},
    )
    answer = json.loads(completion.choices[0].message.content or "")
    assert isinstance(answer["city"], str)
    assert isinstance(answer["days"], int)


async def test_the_same_request_through_openai_and_generate_shares_one_entry(
    client: openai.AsyncOpenAI, gateway: Gateway, emulator: Emulator
):
    completion = await client.chat.completions.create(
        model="flash", messages=ask("one entry"), temperature=0.5
    )
    body = {
        "model": "flash",
        "messages": ask("one entry"),
        "params": {"temperature": 0.5},
    }
    native = await gateway.generate(body)

    assert native.header("X-Cache") == "HIT"
    assert native.body["text"] == completion.choices[0].message.content
    assert await emulator.calls() == 1


async def test_models_list_and_get_in_openai_shape(client: openai.AsyncOpenAI, gateway: Gateway):
    page = await client.models.list()
    ids = {m.id for m in page.data}
    assert "gemini-2.5-flash" in ids
    assert all(m.object == "model" for m in page.data)

    model = await client.models.retrieve("flash")
    assert model.id == "flash"
    assert model.owned_by == "gemini"
    with pytest.raises(openai.NotFoundError) as missing:
        await client.models.retrieve("no-such-model")
    assert missing.value.code == "model_not_found"

    # promptbus's own clients still find their fields
    native = await gateway.get("/v1/models")
    assert native.body["routes"]
    assert native.body["data"][0]["aliases"] is not None


async def test_errors_are_the_sdk_exception_classes(start_gateway: GatewayFactory):
    gateway = await start_gateway(retry_max_attempts=1)
    sdk = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="any", max_retries=0)
    async with sdk:
        with pytest.raises(openai.NotFoundError):
            await sdk.chat.completions.create(model="no-such-model", messages=ask("hi"))
        with pytest.raises(openai.BadRequestError) as bad:
            await sdk.chat.completions.create(model="flash", messages=[])
        assert bad.value.param == "messages"
        with pytest.raises(openai.BadRequestError) as unsupported:
            await sdk.chat.completions.create(
                model="flash", messages=ask("hi"), logit_bias={"1": 5}
            )
        assert unsupported.value.param == "logit_bias"
        # An upstream 429 that promptbus already retried is not retried again by the SDK
        with pytest.raises(openai.InternalServerError) as exhausted:
            await sdk.chat.completions.create(
                model="flash", messages=ask("slow down [[emulator:status=429,retry_after=2]]")
            )
        assert exhausted.value.code == "upstream_unavailable"
        assert exhausted.value.response.headers["x-should-retry"] == "false"
        with pytest.raises(openai.InternalServerError) as down:
            await sdk.chat.completions.create(
                model="flash", messages=ask("down [[emulator:status=503]]")
            )
        assert down.value.status_code == 503
        assert down.value.response.headers["x-should-retry"] == "false"


async def test_a_rate_limit_of_our_own_tells_the_sdk_when_to_retry(
    start_gateway: GatewayFactory, config_dir: Path
):
    # test-limited allows 3 requests a minute
    gateway = await start_gateway(config_dir=config_dir, retry_max_attempts=1, rate_limit_wait_s=0)
    sdk = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key="any", max_retries=0)
    async with sdk:
        for i in range(3):
            await sdk.chat.completions.create(model="limited", messages=ask(f"fill {i}"))
        with pytest.raises(openai.RateLimitError) as limited:
            await sdk.chat.completions.create(model="limited", messages=ask("one too many"))
    headers = limited.value.response.headers
    assert headers["x-should-retry"] == "true"
    assert float(headers["retry-after"]) >= 1
    assert int(headers["retry-after-ms"]) > 0


async def test_langchain_chat_openai_works_through_promptbus(gateway: Gateway, emulator: Emulator):
    llm = ChatOpenAI(
        model="flash",
        base_url=gateway.url + "/v1",
        api_key="any",
        max_retries=0,
        use_responses_api=False,
        stream_usage=True,
    )
    reply = await llm.ainvoke("hello there")
    assert reply.text
    assert reply.usage_metadata is not None
    chunks = [chunk async for chunk in llm.astream("hello there")]
    assert "".join(c.text for c in chunks) == reply.text
    assert await emulator.calls() == 1


async def test_more_than_one_choice_is_refused_clearly(client: openai.AsyncOpenAI):
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model="flash", messages=ask("two"), n=2)
    assert refused.value.param == "n"
    assert "does not support" in str(refused.value)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize("model", ["flash", "gpt-4o-mini"])
async def test_tool_calls_round_trip_in_openai_shape(
    client: openai.AsyncOpenAI, emulator: Emulator, model: str
):
    question = [{"role": "user", "content": "weather? [[emulator:tool_calls=1]]"}]
    first = await client.chat.completions.create(
        model=model, messages=question, tools=[WEATHER_TOOL], tool_choice="auto"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    assert calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    assert isinstance(json.loads(calls[0].function.arguments)["city"], str)

    # The tool's result goes back; the model answers with text that uses it
    follow_up = [
        *question,
        {"role": "assistant", "content": None, "tool_calls": [calls[0].model_dump()]},
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny, 21 C"},
    ]
    second = await client.chat.completions.create(
        model=model, messages=follow_up, tools=[WEATHER_TOOL]
    )
    assert "sunny, 21 C" in (second.choices[0].message.content or "")
    assert second.choices[0].finish_reason == "stop"

    # Streamed, the tool call arrives as tool_calls deltas
    stream = await client.chat.completions.create(
        model=model, messages=question, tools=[WEATHER_TOOL], stream=True
    )
    chunks = [c async for c in stream]
    streamed = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert streamed
    assert streamed[0].function is not None
    assert streamed[0].function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
