"""Tests of the Gemini emulator, driven over loopback by the real LangChain client."""

import gc
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from google import genai
from google.genai.errors import ClientError, ServerError
from langchain_core.exceptions import ModelAPIError, ModelRateLimitError
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_google_genai import ChatGoogleGenerativeAI

from pipeline.emulator import EMULATOR_API_KEY, EmulatorConfig, RunningEmulator
from tests.pipeline.emulator_support import (
    GEMINI_MODEL as MODEL,
)
from tests.pipeline.emulator_support import (
    ZERO_STATS,
    read_stats,
    running,
)
from tests.pipeline.emulator_support import (
    gemini_chat as chat,
)

PROMPT = [("system", "be brief"), ("human", "hello")]
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"
BODY = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}

# langchain-core reads error bodies with a sync response.json(); on the SDK's aiohttp
# transport that creates a coroutine nobody awaits. Tests expecting errors collect it here.
UNAWAITED_ERROR_BODY = "ignore:coroutine 'ClientResponse.json' was never awaited:RuntimeWarning"


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


async def invoke(llm: ChatGoogleGenerativeAI, text: str) -> AIMessage:
    """Ask one question with a fixed system prompt."""
    return await llm.ainvoke([("system", "be brief"), ("human", text)])


def gemini_stats(calls: int, stream_calls: int = 0, errors: int = 0) -> dict[str, object]:
    """The counters after `calls` Gemini calls to MODEL."""
    return {
        **ZERO_STATS,
        "calls": calls,
        "by_model": {MODEL: calls},
        "stream_calls": stream_calls,
        "errors": errors,
        "by_api": {"gemini": calls, "openai": 0},
    }


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


@pytest.mark.filterwarnings(UNAWAITED_ERROR_BODY)
async def test_status_directive_raises_and_is_counted(
    llm: ChatGoogleGenerativeAI, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(ModelAPIError, match="503") as excinfo:
        await invoke(llm, "hello [[emulator:status=503]]")
    # 5xx surface as the SDK's ServerError itself (LangChain subclasses it).
    assert isinstance(excinfo.value, ServerError)
    assert excinfo.value.code == 503
    assert excinfo.value.status == "UNAVAILABLE"
    del excinfo
    gc.collect()

    assert await read_stats(http) == gemini_stats(1, errors=1)


@pytest.mark.filterwarnings(UNAWAITED_ERROR_BODY)
async def test_status_directive_fails_a_stream(llm: ChatGoogleGenerativeAI) -> None:
    with pytest.raises(ModelRateLimitError, match="429 RESOURCE_EXHAUSTED") as excinfo:
        _ = [chunk async for chunk in llm.astream("hello [[emulator:status=429]]")]
    # 4xx are re-raised as LangChain errors, with the SDK's ClientError only as the cause.
    assert not isinstance(excinfo.value, ClientError)
    assert isinstance(excinfo.value.__cause__, ClientError)
    assert excinfo.value.__cause__.code == 429
    del excinfo
    gc.collect()


async def test_safety_block_returns_empty_content(llm: ChatGoogleGenerativeAI) -> None:
    msg = await invoke(llm, "hello [[emulator:block=safety]]")

    assert msg.content == ""
    assert msg.response_metadata["finish_reason"] == "SAFETY"
    assert msg.response_metadata["safety_ratings"][0]["blocked"] is True
    assert [block["type"] for block in msg.content_blocks] == ["refusal"]


async def test_prompt_block_returns_empty_content_with_feedback(
    llm: ChatGoogleGenerativeAI,
) -> None:
    msg = await invoke(llm, "hello [[emulator:block=prompt]]")

    assert msg.content == ""
    assert "finish_reason" not in msg.response_metadata
    assert msg.response_metadata["prompt_feedback"]["block_reason"] == "SAFETY"
    assert msg.usage_metadata is None


async def test_empty_directive_returns_empty_text(llm: ChatGoogleGenerativeAI) -> None:
    msg = await invoke(llm, "hello [[emulator:empty]]")

    assert msg.content == ""
    assert msg.response_metadata["finish_reason"] == "STOP"
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["output_tokens"] == 0


async def test_delay_directive_slows_the_answer(llm: ChatGoogleGenerativeAI) -> None:
    started = time.perf_counter()
    msg = await invoke(llm, "hello [[emulator:delay=200]]")

    assert time.perf_counter() - started >= 0.2
    assert msg.response_metadata["finish_reason"] == "STOP"


async def test_directives_combine(llm: ChatGoogleGenerativeAI) -> None:
    started = time.perf_counter()
    msg = await invoke(llm, "hello [[emulator:delay=200,empty]]")

    assert time.perf_counter() - started >= 0.2
    assert msg.content == ""


async def test_latency_config_delays_every_answer() -> None:
    async with running(EmulatorConfig(latency_ms=200)) as emulator, chat(emulator) as llm:
        started = time.perf_counter()
        await llm.ainvoke(PROMPT)

        assert time.perf_counter() - started >= 0.2


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


@pytest.mark.filterwarnings(UNAWAITED_ERROR_BODY)
async def test_retry_after_on_429_is_in_retry_info_and_header(llm: ChatGoogleGenerativeAI) -> None:
    with pytest.raises(ModelRateLimitError) as excinfo:
        await invoke(llm, "hello [[emulator:status=429,retry_after=2.5]]")

    # LangChain raises GoogleRateLimitError from the SDK's ClientError; the SDK keeps the
    # whole error body in `.details` and the aiohttp response in `.response`.
    cause = excinfo.value.__cause__
    assert isinstance(cause, ClientError)
    assert cause.code == 429
    assert cause.details["error"]["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.500s"}
    ]
    assert cause.response.headers["Retry-After"] == "3"
    del excinfo, cause
    gc.collect()


@pytest.mark.filterwarnings(UNAWAITED_ERROR_BODY)
async def test_retry_after_on_503_is_on_the_server_error_itself(
    llm: ChatGoogleGenerativeAI,
) -> None:
    with pytest.raises(ServerError) as excinfo:
        await invoke(llm, "hello [[emulator:status=503,retry_after=4]]")

    error = excinfo.value.details["error"]
    assert error["status"] == "UNAVAILABLE"
    assert error["details"][0]["retryDelay"] == "4s"
    assert excinfo.value.response.headers["Retry-After"] == "4"
    del excinfo
    gc.collect()


async def test_status_without_retry_after_has_no_details(http: aiohttp.ClientSession) -> None:
    body = {"contents": [{"parts": [{"text": "x [[emulator:status=500]]"}]}]}
    async with http.post(GENERATE, json=body) as resp:
        assert resp.status == 500
        assert "Retry-After" not in resp.headers
        error = (await resp.json())["error"]

    assert error == {"code": 500, "message": error["message"], "status": "INTERNAL"}


async def test_retry_after_without_status_is_400(http: aiohttp.ClientSession) -> None:
    body = {"contents": [{"parts": [{"text": "x [[emulator:retry_after=1]]"}]}]}
    async with http.post(GENERATE, json=body) as resp:
        assert resp.status == 400
        assert "retry_after needs a status" in (await resp.json())["error"]["message"]


async def test_reset_directive_drops_the_connection(
    llm: ChatGoogleGenerativeAI, http: aiohttp.ClientSession
) -> None:
    # google-genai lets aiohttp's own error through: ClientOSError, ECONNRESET.
    with pytest.raises(aiohttp.ClientConnectionError):
        await invoke(llm, "hello [[emulator:reset]]")
    with pytest.raises(aiohttp.ClientConnectionError):
        _ = [chunk async for chunk in llm.astream("hello [[emulator:reset]]")]

    assert await read_stats(http) == gemini_stats(2, stream_calls=1, errors=2)
    # The emulator keeps serving after a reset.
    assert (await invoke(llm, "hello")).text.startswith(f"[{MODEL}] hello #")


async def test_directives_are_read_from_the_last_user_turn_only(
    llm: ChatGoogleGenerativeAI,
) -> None:
    msg = await llm.ainvoke(
        [("human", "first [[emulator:status=503]]"), ("ai", "sorry"), ("human", "again")]
    )

    assert msg.content.startswith(f"[{MODEL}] again #")


async def test_stop_sequences_cut_the_answer(emu: RunningEmulator) -> None:
    async with chat(emu, stop=["three"]) as llm:
        msg = await invoke(llm, "one two three four")

    assert msg.content == f"[{MODEL}] one two "
    assert msg.response_metadata["finish_reason"] == "STOP"
