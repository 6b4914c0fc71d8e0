"""Tests of the emulator's Gemini API: answers, streaming, stats and routes, over loopback."""

from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from google import genai
from langchain_core.messages import AIMessageChunk
from langchain_google_genai import ChatGoogleGenerativeAI

from pipeline.emulator import EMULATOR_API_KEY, RunningEmulator
from tests.support.emulator import GEMINI_GENERATE as GENERATE
from tests.support.emulator import GEMINI_MODEL as MODEL
from tests.support.emulator import GEMINI_PROMPT as PROMPT
from tests.support.emulator import ZERO_STATS, gemini_stats, read_stats, running
from tests.support.emulator import gemini_chat as chat
from tests.support.emulator import gemini_invoke as invoke

STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"
BODY = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with running() as emulator:
        yield emulator


@pytest.fixture
async def llm(emu: RunningEmulator) -> AsyncIterator[ChatGoogleGenerativeAI]:
    async with chat(emu) as client:
        yield client


@pytest.fixture
async def http(emu: RunningEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emu.base_url) as session:
        yield session


async def test_invoke_returns_answer_finish_reason_and_usage(
    llm: ChatGoogleGenerativeAI,
) -> None:
    msg = await llm.ainvoke(PROMPT)

    assert isinstance(msg.content, str)
    assert msg.content.startswith(f"[{MODEL}] hello #")
    assert msg.response_metadata["finish_reason"] == "STOP"
    assert msg.response_metadata["model_name"] == MODEL
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["input_tokens"] == 3  # "be brief" + "hello"
    assert msg.usage_metadata["output_tokens"] == 3
    assert msg.usage_metadata["total_tokens"] == 6


async def test_same_prompt_gives_same_answer(llm: ChatGoogleGenerativeAI) -> None:
    first = await llm.ainvoke(PROMPT)
    second = await llm.ainvoke(PROMPT)

    assert first.content == second.content


async def test_answer_is_byte_identical_on_the_wire(http: aiohttp.ClientSession) -> None:
    bodies = []
    for _ in range(2):
        async with http.post(GENERATE, json=BODY) as resp:
            assert resp.status == 200
            bodies.append(await resp.read())

    assert bodies[0] == bodies[1]
    reply = orjson.loads(bodies[0])
    assert reply["candidates"][0]["content"]["role"] == "model"
    assert reply["modelVersion"] == MODEL
    assert reply["responseId"]


async def test_any_prompt_change_changes_the_answer(emu: RunningEmulator) -> None:
    async with (
        chat(emu) as base,
        chat(emu, temperature=0.9) as warm,
        chat(emu, model="gemini-2.5-pro") as pro,
    ):
        answers = {
            (await base.ainvoke(PROMPT)).text,
            (await base.ainvoke([("system", "be brief"), ("human", "hello!")])).text,
            (await base.ainvoke([("system", "be long"), ("human", "hello")])).text,
            (await warm.ainvoke(PROMPT)).text,
            (await pro.ainvoke(PROMPT)).text,
        }

    assert len(answers) == 5


async def test_max_output_tokens_truncates_words(emu: RunningEmulator) -> None:
    async with chat(emu, max_output_tokens=2) as llm:
        msg = await invoke(llm, "one two three four")

    assert msg.content == f"[{MODEL}] one"
    assert msg.response_metadata["finish_reason"] == "MAX_TOKENS"
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["output_tokens"] == 2


async def test_stop_sequences_cut_the_answer(emu: RunningEmulator) -> None:
    async with chat(emu, stop=["three"]) as llm:
        msg = await invoke(llm, "one two three four")

    assert msg.content == f"[{MODEL}] one two "
    assert msg.response_metadata["finish_reason"] == "STOP"


async def test_stream_chunks_join_to_the_invoke_answer(llm: ChatGoogleGenerativeAI) -> None:
    expected = await llm.ainvoke(PROMPT)
    chunks = [chunk async for chunk in llm.astream(PROMPT)]

    texts = [chunk.text for chunk in chunks]
    assert sum(1 for text in texts if text) >= 2
    assert "".join(texts) == expected.content
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert isinstance(total, AIMessageChunk)
    assert total.response_metadata["finish_reason"] == "STOP"
    assert total.usage_metadata == expected.usage_metadata


async def test_stream_wire_format_is_sse(http: aiohttp.ClientSession) -> None:
    async with http.post(STREAM, params={"alt": "sse"}, json=BODY) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        raw = await resp.read()

    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b""
    chunks = [orjson.loads(event.removeprefix(b"data: ")) for event in events[:-1]]
    assert 2 <= len(chunks) <= 4
    assert all("finishReason" not in chunk["candidates"][0] for chunk in chunks[:-1])
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] == 4


async def test_stats_count_calls_by_model_and_reset(
    llm: ChatGoogleGenerativeAI, http: aiohttp.ClientSession
) -> None:
    assert await read_stats(http) == ZERO_STATS

    await llm.ainvoke(PROMPT)
    _ = [chunk async for chunk in llm.astream(PROMPT)]
    async with http.post(GENERATE, data=b"{not json") as resp:
        assert resp.status == 400

    assert await read_stats(http) == gemini_stats(3, stream_calls=1, errors=1)
    async with http.post("/stats/reset") as resp:
        assert resp.status == 200
    assert await read_stats(http) == ZERO_STATS


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "Invalid JSON payload"),
        (b"[]", "Invalid JSON payload"),
        (b"{}", "contents is not specified"),
        (b'{"contents": [{"role": "user"}]}', "parts"),
        (b'{"contents": [{"parts": [{"text": "[[emulator:nope]]"}]}]}', "nope"),
    ],
)
async def test_bad_request_is_400_in_google_format(
    http: aiohttp.ClientSession, payload: bytes, message: str
) -> None:
    async with http.post(GENERATE, data=payload) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]

    assert error["code"] == 400
    assert error["status"] == "INVALID_ARGUMENT"
    assert message in error["message"]


@pytest.mark.parametrize(
    "path", [f"/v1beta/models/{MODEL}:embedContent", f"/v1beta/models/{MODEL}", "/v2/models"]
)
async def test_unknown_route_is_404_in_google_format(
    http: aiohttp.ClientSession, path: str
) -> None:
    async with http.post(path, json=BODY) as resp:
        assert resp.status == 404
        error = (await resp.json())["error"]

    assert error == {"code": 404, "message": error["message"], "status": "NOT_FOUND"}


async def test_list_models_on_v1beta(http: aiohttp.ClientSession) -> None:
    async with http.get("/v1beta/models") as resp:
        assert resp.status == 200
        names = [model["name"] for model in (await resp.json())["models"]]

    assert f"models/{MODEL}" in names
    assert len(names) >= 2


@pytest.mark.parametrize("version", ["v1beta", "v1"])
async def test_google_genai_lists_models_on_both_versions(
    emu: RunningEmulator, version: str
) -> None:
    # GET /v1/models is OpenAI's list, but a request with only a Gemini key gets Gemini's.
    options = genai.types.HttpOptions(base_url=emu.base_url, api_version=version)
    client = genai.Client(api_key=EMULATOR_API_KEY, http_options=options)
    try:
        names = [model.name async for model in await client.aio.models.list()]
    finally:
        await client.aio.aclose()

    assert f"models/{MODEL}" in names


async def test_v1_generate_route(http: aiohttp.ClientSession) -> None:
    async with http.post(f"/v1/models/{MODEL}:generateContent", json=BODY) as resp:
        assert resp.status == 200
        reply = await resp.json()

    assert reply["candidates"][0]["finishReason"] == "STOP"


async def test_healthz(http: aiohttp.ClientSession) -> None:
    async with http.get("/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_base_url_is_loopback(emu: RunningEmulator) -> None:
    assert emu.port > 0
    assert emu.base_url == f"http://127.0.0.1:{emu.port}"
