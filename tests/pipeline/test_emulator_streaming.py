"""Tests of the emulator's stream controls (chunks, chunk_delay, cut, stream_error) and of
Gemini's cumulative stream usage, with the official SDKs and LangChain over loopback."""

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from google import genai
from google.genai import errors, types
from langchain_core.messages import AIMessageChunk

from pipeline.emulator import EMULATOR_API_KEY, RunningEmulator
from tests.support.emulator import (
    BEARER,
    GEMINI_MODEL,
    OPENAI_MODEL,
    gemini_chat,
    openai_chat,
    read_stats,
    running,
)

# Ten words, twelve with the model tag and the digest the answer adds.
WORDS = "one two three four five six seven eight nine ten"
STREAM = f"/v1beta/models/{GEMINI_MODEL}:streamGenerateContent"


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with running() as emulator:
        yield emulator


@pytest.fixture
async def http(emu: RunningEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emu.base_url) as session:
        yield session


@pytest.fixture
async def client(emu: RunningEmulator) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=f"{emu.base_url}/v1", api_key="any", max_retries=0)
    yield sdk
    await sdk.close()


@pytest.fixture(params=["v1", "v1beta"])
async def gclient(emu: RunningEmulator, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    options = types.HttpOptions(base_url=emu.base_url, api_version=request.param)
    sdk = genai.Client(api_key=EMULATOR_API_KEY, http_options=options)
    yield sdk.aio
    await sdk.aio.aclose()


async def openai_stream(client: openai.AsyncOpenAI, text: str) -> Any:
    return await client.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[{"role": "user", "content": text}],
        stream=True,
        stream_options={"include_usage": True},
    )


async def drain(stream: AsyncIterator[Any], received: list[Any]) -> None:
    """Read a stream to its end (or its error), keeping what arrives."""
    async for item in stream:
        received.append(item)


def texts_of(chunks: list[Any]) -> list[str]:
    """The text of each OpenAI chunk that carries some."""
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


# chunks=N


@pytest.mark.parametrize(("count", "expected"), [(1, 1), (5, 5), (12, 12), (64, 12)])
async def test_openai_chunks_directive_sets_the_text_chunk_count(
    client: openai.AsyncOpenAI, count: int, expected: int
) -> None:
    text = f"{WORDS} [[emulator:chunks={count}]]"
    plain = await client.chat.completions.create(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": text}]
    )
    chunks = [chunk async for chunk in await openai_stream(client, text)]

    pieces = texts_of(chunks)
    assert len(pieces) == expected  # at most one chunk per word
    assert "".join(pieces) == plain.choices[0].message.content
    assert chunks[-1].usage == plain.usage


async def test_gemini_chunks_carry_cumulative_usage(gclient: Any) -> None:
    text = f"{WORDS} [[emulator:chunks=5]]"
    plain = await gclient.models.generate_content(model=GEMINI_MODEL, contents=text)
    stream = await gclient.models.generate_content_stream(model=GEMINI_MODEL, contents=text)
    chunks = [chunk async for chunk in stream]

    assert len(chunks) == 5
    assert "".join(chunk.text for chunk in chunks) == plain.text
    sent = ""
    for chunk in chunks:
        sent += chunk.text
        usage = chunk.usage_metadata
        assert usage.prompt_token_count == plain.usage_metadata.prompt_token_count
        assert usage.candidates_token_count == len(sent.split())
        assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
        assert chunk.model_version == GEMINI_MODEL
        assert chunk.response_id == plain.response_id
    assert chunks[-1].usage_metadata == plain.usage_metadata
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert all(chunk.candidates[0].finish_reason is None for chunk in chunks[:-1])


async def test_gemini_default_stream_has_usage_on_every_chunk(http: aiohttp.ClientSession) -> None:
    body = {"contents": [{"parts": [{"text": WORDS}]}]}
    async with http.post(STREAM, params={"alt": "sse"}, json=body) as resp:
        raw = await resp.read()

    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b""
    chunks = [orjson.loads(event.removeprefix(b"data: ")) for event in events[:-1]]
    assert len(chunks) == 3  # the default is unchanged
    counts = [chunk["usageMetadata"]["candidatesTokenCount"] for chunk in chunks]
    assert counts == sorted(counts)
    assert counts[-1] == 12
    assert all({"modelVersion", "responseId", "usageMetadata"} <= chunk.keys() for chunk in chunks)


async def test_chat_google_summed_stream_usage_equals_invoke_usage(emu: RunningEmulator) -> None:
    text = f"{WORDS} [[emulator:chunks=6]]"
    async with gemini_chat(emu) as llm:
        expected = await llm.ainvoke(text)
        chunks = [chunk async for chunk in llm.astream(text)]

    assert sum(1 for chunk in chunks if chunk.text) == 6
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert isinstance(total, AIMessageChunk)
    assert total.text == expected.text
    assert total.usage_metadata == expected.usage_metadata


async def test_chat_openai_stream_follows_the_chunk_count(emu: RunningEmulator) -> None:
    llm = openai_chat(emu, use_responses_api=False, stream_usage=True)
    text = f"{WORDS} [[emulator:chunks=7]]"
    expected = await llm.ainvoke(text)
    chunks = [chunk async for chunk in llm.astream(text)]

    assert sum(1 for chunk in chunks if chunk.text) == 7
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.text == expected.text
    assert total.usage_metadata == expected.usage_metadata


# chunk_delay=MS


async def test_openai_chunk_delay_spaces_the_events(client: openai.AsyncOpenAI) -> None:
    started = time.perf_counter()
    arrivals = []
    stream = await openai_stream(client, f"{WORDS} [[emulator:chunks=4,chunk_delay=60]]")
    async for chunk in stream:
        arrivals.append((time.perf_counter(), chunk))

    # role, 4 texts, finish, usage: 7 events, 6 pauses of 60 ms before the last arrives.
    assert len(arrivals) == 7
    assert arrivals[-1][0] - started >= 6 * 0.06
    assert arrivals[-1][0] - arrivals[0][0] >= 3 * 0.06  # loosely: 5 pauses lie between
    assert [t for t, _ in arrivals] == sorted(t for t, _ in arrivals)
    assert texts_of([chunk for _, chunk in arrivals])[0].startswith(f"[{OPENAI_MODEL}] one")


async def test_gemini_chunk_delay_comes_after_the_delay(gclient: Any) -> None:
    started = time.perf_counter()
    stream = await gclient.models.generate_content_stream(
        model=GEMINI_MODEL, contents=f"{WORDS} [[emulator:delay=100,chunks=3,chunk_delay=80]]"
    )
    arrivals = [time.perf_counter() async for _ in stream]

    assert len(arrivals) == 3
    assert arrivals[0] - started >= 0.1
    assert arrivals[-1] - started >= 0.1 + 2 * 0.08
    # Loosely: a slow client may read the first chunk late, never the last one early.
    assert arrivals[-1] - arrivals[0] >= 0.08


# cut=N


async def test_openai_cut_drops_the_connection_mid_stream(
    client: openai.AsyncOpenAI, http: aiohttp.ClientSession
) -> None:
    received = []
    stream = await openai_stream(client, f"{WORDS} [[emulator:chunks=4,cut=2]]")
    with pytest.raises(openai.APIConnectionError):
        await drain(stream, received)

    assert len(texts_of(received)) == 2
    assert all(c.choices and c.choices[0].finish_reason is None for c in received)
    stats = await read_stats(http)
    assert (stats["calls"], stats["stream_calls"], stats["errors"]) == (1, 1, 1)


async def test_openai_cut_leaves_the_chunked_body_incomplete(http: aiohttp.ClientSession) -> None:
    body = {
        "model": OPENAI_MODEL,
        "messages": [{"role": "user", "content": f"{WORDS} [[emulator:cut=1]]"}],
        "stream": True,
    }
    pieces: list[bytes] = []
    async with http.post("/v1/chat/completions", json=body, headers=BEARER) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await drain(resp.content.iter_any(), pieces)

    received = b"".join(pieces)
    events = [orjson.loads(e.removeprefix(b"data: ")) for e in received.split(b"\n\n") if e]
    assert len(events) == 2  # the role chunk and one text chunk
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert b"[DONE]" not in received


async def test_gemini_cut_raises_in_google_genai(gclient: Any) -> None:
    received = []
    stream = await gclient.models.generate_content_stream(
        model=GEMINI_MODEL, contents=f"{WORDS} [[emulator:chunks=3,cut=3]]"
    )
    with pytest.raises(aiohttp.ClientPayloadError):
        await drain(stream, received)

    # Even with every text chunk sent, the one with finishReason never comes.
    assert len(received) == 3
    assert all(chunk.candidates[0].finish_reason is None for chunk in received)


async def test_chat_openai_stream_raises_on_a_cut(emu: RunningEmulator) -> None:
    llm = openai_chat(emu, use_responses_api=False, stream_usage=True)
    with pytest.raises(openai.APIConnectionError):
        _ = [chunk async for chunk in llm.astream(f"{WORDS} [[emulator:cut=1]]")]


# stream_error=N


async def test_openai_stream_error_raises_api_error_mid_stream(
    client: openai.AsyncOpenAI, http: aiohttp.ClientSession
) -> None:
    received = []
    stream = await openai_stream(client, f"{WORDS} [[emulator:chunks=4,stream_error=3]]")
    with pytest.raises(openai.APIError) as excinfo:
        await drain(stream, received)

    assert not isinstance(excinfo.value, openai.APIStatusError | openai.APIConnectionError)
    assert (excinfo.value.type, excinfo.value.code) == ("server_error", "stream_error")
    assert len(texts_of(received)) == 3
    assert (await read_stats(http))["errors"] == 1


async def test_openai_stream_error_wire_format(http: aiohttp.ClientSession) -> None:
    body = {
        "model": OPENAI_MODEL,
        "messages": [{"role": "user", "content": f"{WORDS} [[emulator:stream_error=0]]"}],
        "stream": True,
    }
    async with http.post("/v1/chat/completions", json=body, headers=BEARER) as resp:
        raw = await resp.read()  # a clean end: the body is complete

    events = raw.split(b"\n\n")
    assert events[-1] == b""
    assert len(events) == 3  # the role chunk, then the error
    error = orjson.loads(events[1].removeprefix(b"data: "))
    assert error == {
        "error": {
            "message": error["error"]["message"],
            "type": "server_error",
            "param": None,
            "code": "stream_error",
        }
    }


async def test_gemini_stream_error_raises_server_error(gclient: Any) -> None:
    received = []
    stream = await gclient.models.generate_content_stream(
        model=GEMINI_MODEL, contents=f"{WORDS} [[emulator:chunks=4,stream_error=2]]"
    )
    with pytest.raises(errors.ServerError) as excinfo:
        await drain(stream, received)

    assert (excinfo.value.code, excinfo.value.status) == (500, "INTERNAL")
    assert len(received) == 2


async def test_gemini_stream_error_wire_format(http: aiohttp.ClientSession) -> None:
    body = {"contents": [{"parts": [{"text": f"{WORDS} [[emulator:stream_error=1]]"}]}]}
    async with http.post(STREAM, params={"alt": "sse"}, json=body) as resp:
        assert resp.status == 200
        raw = await resp.read()

    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b""
    assert len(events) == 3
    assert "finishReason" not in orjson.loads(events[0].removeprefix(b"data: "))["candidates"][0]
    error = orjson.loads(events[1].removeprefix(b"data: "))
    assert error == {
        "error": {"code": 500, "message": error["error"]["message"], "status": "INTERNAL"}
    }


async def test_chat_google_stream_raises_on_a_stream_error(emu: RunningEmulator) -> None:
    async with gemini_chat(emu) as llm:
        with pytest.raises(errors.ServerError):
            _ = [chunk async for chunk in llm.astream(f"{WORDS} [[emulator:stream_error=1]]")]


# What the stream controls leave alone


@pytest.mark.parametrize("directive", ["cut=0", "stream_error=1", "chunks=2", "chunk_delay=1"])
async def test_non_stream_calls_ignore_stream_controls(
    client: openai.AsyncOpenAI, gclient: Any, directive: str
) -> None:
    text = f"hello [[emulator:{directive}]]"
    reply = await client.chat.completions.create(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": text}]
    )
    greply = await gclient.models.generate_content(model=GEMINI_MODEL, contents=text)

    assert reply.choices[0].message.content is not None
    assert reply.choices[0].message.content.startswith(f"[{OPENAI_MODEL}] hello #")
    assert greply.text.startswith(f"[{GEMINI_MODEL}] hello #")


@pytest.mark.parametrize(
    "directive",
    [
        "tool_calls=0",
        "tool_calls=5",
        "chunks=0",
        "chunks=65",
        "chunk_delay=-1",
        "cut=x",
        "stream_error=",
        "cut=1,stream_error=1",
    ],
)
async def test_bad_stream_and_tool_directives_are_400(
    http: aiohttp.ClientSession, directive: str
) -> None:
    text = f"hello [[emulator:{directive}]]"
    body = {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": text}]}
    async with http.post("/v1/chat/completions", json=body, headers=BEARER) as resp:
        assert resp.status == 400
    gbody = {"contents": [{"parts": [{"text": text}]}]}
    async with http.post(STREAM, params={"alt": "sse"}, json=gbody) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["status"] == "INVALID_ARGUMENT"
