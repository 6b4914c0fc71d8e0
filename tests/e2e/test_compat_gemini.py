"""The official google-genai client, unchanged, against promptbus on v1 and v1beta."""

from collections.abc import AsyncIterator

import aiohttp
import pytest
from google import genai
from google.genai import types
from pydantic import BaseModel

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway
from tests.support.genai_clients import VERSIONS, gemini_path, genai_client, header

SYSTEM = {"system_instruction": "be brief"}


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(version: str, gateway: Gateway) -> AsyncIterator[genai.Client]:
    async with genai_client(gateway.url, version) as sdk:
        yield sdk


class City(BaseModel):
    name: str
    population: int


async def test_an_answer_has_text_usage_and_the_model_that_gave_it(client: genai.Client):
    answer = await client.aio.models.generate_content(
        model="flash", contents="hello there", config=SYSTEM
    )

    assert answer.text is not None
    assert answer.text.startswith("[gemini-2.5-flash] hello there #")
    candidate = answer.candidates[0]
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content.role == "model"
    usage = answer.usage_metadata
    assert usage.prompt_token_count > 0
    assert usage.candidates_token_count > 0
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert answer.model_version == "gemini-2.5-flash"
    assert answer.response_id.startswith("gen_")


async def test_a_second_identical_call_is_served_from_the_cache(
    client: genai.Client,
    version: str,
    gateway: Gateway,
    emulator: Emulator,
    session: aiohttp.ClientSession,
):
    first = await client.aio.models.generate_content(model="flash", contents="once", config=SYSTEM)
    again = await client.aio.models.generate_content(model="flash", contents="once", config=SYSTEM)

    assert await emulator.calls() == 1
    assert again.text == first.text
    assert header(again, "x-cache") == "HIT"
    # The same request as raw JSON sees the headers promptbus adds
    body = {
        "contents": [{"role": "user", "parts": [{"text": "once"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}], "role": "user"},
    }
    url = gateway.url + gemini_path("flash", "generateContent", version)
    async with session.post(url, json=body, headers={"x-goog-api-key": "k"}) as resp:
        assert resp.status == 200
        assert resp.headers["X-Cache"] == "HIT"
        assert "Age" in resp.headers
        assert (await resp.json())["candidates"][0]["content"]["parts"][0]["text"] == first.text
    assert await emulator.calls() == 1


async def test_a_stream_joins_to_the_plain_answer_and_ends_with_usage(
    client: genai.Client, emulator: Emulator
):
    stream = await client.aio.models.generate_content_stream(
        model="flash", contents="stream me please now", config=SYSTEM
    )
    chunks = [chunk async for chunk in stream]

    assert len(chunks) >= 3, "the emulator streams its answer in several chunks"
    assert header(chunks[0], "x-cache") == "MISS"
    text = "".join(chunk.text or "" for chunk in chunks)
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata.candidates_token_count > 0
    assert all(chunk.usage_metadata is None for chunk in chunks[:-1])
    assert {chunk.response_id for chunk in chunks} == {last.response_id}

    # The finished stream was stored: a plain call gets the same text from the cache
    plain = await client.aio.models.generate_content(
        model="flash", contents="stream me please now", config=SYSTEM
    )
    assert plain.text == text
    assert plain.usage_metadata.total_token_count == last.usage_metadata.total_token_count
    assert await emulator.calls() == 1


async def test_a_stream_is_replayed_from_the_cache(client: genai.Client, emulator: Emulator):
    words = " ".join(f"w{i}" for i in range(40))
    first = [
        c
        async for c in await client.aio.models.generate_content_stream(model="pro", contents=words)
    ]
    again = [
        c
        async for c in await client.aio.models.generate_content_stream(model="pro", contents=words)
    ]

    assert await emulator.calls() == 1
    assert header(again[0], "x-cache") == "HIT"
    assert "".join(c.text or "" for c in again) == "".join(c.text or "" for c in first)
    assert len(again) > 2, "a long cached answer replays in several chunks"
    assert again[-1].usage_metadata.total_token_count == first[-1].usage_metadata.total_token_count


async def test_system_instruction_and_turns_reach_the_model(client: genai.Client):
    history = [
        types.Content(role="user", parts=[types.Part(text="my name is Ada")]),
        types.Content(role="model", parts=[types.Part(text="hello Ada")]),
        types.Content(role="user", parts=[types.Part(text="what"), types.Part(text="is it?")]),
    ]
    answer = await client.aio.models.generate_content(
        model="flash", contents=history, config=SYSTEM
    )
    other = await client.aio.models.generate_content(
        model="flash", contents=history, config={"system_instruction": "be long"}
    )

    # The answer echoes the last user turn (its parts joined); the digest sees everything
    assert answer.text.startswith("[gemini-2.5-flash] what is it? #")
    assert other.text != answer.text


async def test_count_tokens_asks_gemini_or_estimates(client: genai.Client, emulator: Emulator):
    gemini = await client.aio.models.count_tokens(model="flash", contents="one two three")
    other = await client.aio.models.count_tokens(model="gpt-4o-mini", contents="one two three")

    assert gemini.total_tokens == 3, "the emulator's countTokens counts words"
    assert other.total_tokens == 4, "13 characters at four a token, rounded up"
    assert await emulator.calls() == 0, "counting generates nothing"


@pytest.mark.parametrize(
    "config",
    [
        {"response_mime_type": "application/json", "response_schema": City},
        {
            "response_mime_type": "application/json",
            "response_json_schema": City.model_json_schema(),
        },
    ],
    ids=["responseSchema", "responseJsonSchema"],
)
async def test_a_schema_answer_parses(client: genai.Client, config: dict[str, object]):
    answer = await client.aio.models.generate_content(
        model="flash", contents="a city", config=config
    )

    city = City.model_validate_json(answer.text)
    assert city.name
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP


async def test_the_models_list_and_get_in_gemini_shape(gateway: Gateway):
    async with genai_client(gateway.url, "v1beta") as sdk:
        names = [model.name async for model in await sdk.aio.models.list()]
        flash = await sdk.aio.models.get(model="flash")
        pro = await sdk.aio.models.get(model="models/gemini-2.5-pro")

    assert {"models/gemini-2.5-flash", "models/flash", "models/gpt-4o-mini"} <= set(names)
    assert len(names) == len(set(names))
    assert flash.name == "models/flash"
    assert "gemini-2.5-flash" in flash.description
    assert set(flash.supported_actions) == {
        "generateContent",
        "streamGenerateContent",
        "countTokens",
    }
    assert pro.name == "models/gemini-2.5-pro"


async def test_the_models_list_pages(gateway: Gateway):
    first = await gateway.get("/v1beta/models?pageSize=3")
    rest = await gateway.get(f"/v1beta/models?pageSize=100&pageToken={first.body['nextPageToken']}")
    whole = await gateway.get("/v1beta/models")

    assert len(first.body["models"]) == 3
    assert "nextPageToken" not in rest.body
    assert first.body["models"] + rest.body["models"] == whole.body["models"]


async def test_the_models_list_on_v1(gateway: Gateway):
    async with genai_client(gateway.url, "v1") as sdk:
        names = [model.name async for model in await sdk.aio.models.list()]

    assert "models/flash" in names
