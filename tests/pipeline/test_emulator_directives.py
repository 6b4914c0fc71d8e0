"""Tests of the emulator's in-prompt directives (`[[emulator:...]]`), via the Gemini client."""

import gc
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from google.genai.errors import ClientError, ServerError
from langchain_core.exceptions import ModelAPIError, ModelRateLimitError
from langchain_google_genai import ChatGoogleGenerativeAI

from pipeline.emulator import EmulatorConfig, RunningEmulator
from tests.support.emulator import GEMINI_GENERATE as GENERATE
from tests.support.emulator import GEMINI_MODEL as MODEL
from tests.support.emulator import GEMINI_PROMPT as PROMPT
from tests.support.emulator import gemini_chat as chat
from tests.support.emulator import gemini_invoke as invoke
from tests.support.emulator import gemini_stats, read_stats, running

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


async def test_directives_are_read_from_the_last_user_turn_only(
    llm: ChatGoogleGenerativeAI,
) -> None:
    msg = await llm.ainvoke(
        [("human", "first [[emulator:status=503]]"), ("ai", "sorry"), ("human", "again")]
    )

    assert msg.content.startswith(f"[{MODEL}] again #")
