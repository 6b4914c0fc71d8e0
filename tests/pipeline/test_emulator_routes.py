"""Tests of the emulator's Gemini paths on v1 and v1beta (generate, stream, countTokens,
models) and of the model routes OpenAI and Gemini share."""

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from google import genai
from google.genai import types

from pipeline.emulator import EMULATOR_API_KEY, RunningEmulator
from tests.support.emulator import BEARER, GEMINI_MODEL, ZERO_STATS, read_stats, running

GEMINI_KEY = {"x-goog-api-key": EMULATOR_API_KEY}
CONTENTS = [{"role": "user", "parts": [{"text": "one two three"}]}]


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with running() as emulator:
        yield emulator


@pytest.fixture
async def http(emu: RunningEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emu.base_url) as session:
        yield session


@pytest.fixture(params=["v1", "v1beta"])
def version(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
async def gclient(emu: RunningEmulator, version: str) -> AsyncIterator[Any]:
    options = types.HttpOptions(base_url=emu.base_url, api_version=version)
    sdk = genai.Client(api_key=EMULATOR_API_KEY, http_options=options)
    yield sdk.aio
    await sdk.aio.aclose()


async def test_generate_and_stream_on_both_versions(gclient: Any) -> None:
    reply = await gclient.models.generate_content(model=GEMINI_MODEL, contents="hello there")
    stream = await gclient.models.generate_content_stream(
        model=GEMINI_MODEL, contents="hello there"
    )
    chunks = [chunk async for chunk in stream]

    assert reply.text.startswith(f"[{GEMINI_MODEL}] hello there #")
    assert "".join(chunk.text for chunk in chunks) == reply.text
    assert chunks[-1].usage_metadata == reply.usage_metadata


async def test_count_tokens_matches_the_prompt_token_count(gclient: Any) -> None:
    contents = "count these five words please"
    counted = await gclient.models.count_tokens(model=GEMINI_MODEL, contents=contents)
    reply = await gclient.models.generate_content(model=GEMINI_MODEL, contents=contents)

    assert counted.total_tokens == 5
    assert counted.total_tokens == reply.usage_metadata.prompt_token_count


async def test_count_tokens_of_a_generate_content_request(
    http: aiohttp.ClientSession, version: str
) -> None:
    request = {
        "model": f"models/{GEMINI_MODEL}",
        "contents": CONTENTS,
        "systemInstruction": {"parts": [{"text": "be brief"}]},
    }
    path = f"/{version}/models/{GEMINI_MODEL}"
    async with http.post(f"{path}:countTokens", json={"generateContentRequest": request}) as resp:
        assert resp.status == 200
        counted = await resp.json()
    async with http.post(f"{path}:generateContent", json=request) as resp:
        usage = (await resp.json())["usageMetadata"]

    assert counted == {"totalTokens": 5}
    assert usage["promptTokenCount"] == 5
    # countTokens is not a generate call.
    stats = await read_stats(http)
    assert (stats["calls"], stats["errors"]) == (1, 0)


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"{nope", "Invalid JSON payload"), (b"{}", "contents is not specified")],
)
async def test_count_tokens_bad_request_is_400_in_google_format(
    http: aiohttp.ClientSession, payload: bytes, message: str
) -> None:
    async with http.post(f"/v1/models/{GEMINI_MODEL}:countTokens", data=payload) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]

    assert error["status"] == "INVALID_ARGUMENT"
    assert message in error["message"]
    assert await read_stats(http) == ZERO_STATS


async def test_google_genai_gets_a_model_on_both_versions(gclient: Any) -> None:
    model = await gclient.models.get(model=GEMINI_MODEL)

    assert model.name == f"models/{GEMINI_MODEL}"
    assert model.display_name == "Gemini 2.5 Flash"
    assert model.input_token_limit is not None
    assert model.input_token_limit > model.output_token_limit > 0
    assert {"generateContent", "countTokens"} <= set(model.supported_actions or [])


async def test_openai_sdk_retrieves_a_model_on_the_shared_path(emu: RunningEmulator) -> None:
    sdk = openai.AsyncOpenAI(base_url=f"{emu.base_url}/v1", api_key="any", max_retries=0)
    try:
        model = await sdk.models.retrieve("gpt-4.1-mini")
    finally:
        await sdk.close()

    assert (model.id, model.object) == ("gpt-4.1-mini", "model")


@pytest.mark.parametrize(
    ("path", "headers", "shape"),
    [
        (f"/v1/models/{GEMINI_MODEL}", BEARER, "openai"),
        (f"/v1/models/{GEMINI_MODEL}", GEMINI_KEY, "gemini"),
        (f"/v1/models/{GEMINI_MODEL}?key=k", {}, "gemini"),
        (f"/v1/models/{GEMINI_MODEL}?key=k", BEARER, "openai"),
        (f"/v1beta/models/{GEMINI_MODEL}", {}, "gemini"),
        ("/v1/models?key=k", {}, "gemini list"),
        ("/v1/models", GEMINI_KEY, "gemini list"),
        ("/v1/models", BEARER, "openai list"),
        ("/v1beta/models", {}, "gemini list"),
    ],
)
async def test_model_routes_answer_in_the_shape_of_the_asking_api(
    http: aiohttp.ClientSession, path: str, headers: dict[str, str], shape: str
) -> None:
    async with http.get(path, headers=headers) as resp:
        assert resp.status == 200
        body = await resp.json()

    if shape == "openai":
        assert body == {
            "id": GEMINI_MODEL,
            "object": "model",
            "created": body["created"],
            "owned_by": "emulator",
        }
    elif shape == "gemini":
        assert body["name"] == f"models/{GEMINI_MODEL}"
        assert {"displayName", "inputTokenLimit", "outputTokenLimit"} <= body.keys()
    elif shape == "openai list":
        assert body["object"] == "list"
    else:
        assert f"models/{GEMINI_MODEL}" in [model["name"] for model in body["models"]]


async def test_openai_model_routes_still_need_a_key(http: aiohttp.ClientSession) -> None:
    for path in ("/v1/models", f"/v1/models/{GEMINI_MODEL}"):
        async with http.get(path) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["type"] == "invalid_request_error"
