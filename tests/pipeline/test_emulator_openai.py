"""Tests of the emulator's OpenAI-compatible API, over raw HTTP and with the real ChatOpenAI."""

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI

from pipeline.emulator import RunningEmulator
from tests.support.emulator import (
    BEARER,
    OPENAI_MODEL,
    ZERO_STATS,
    openai_chat,
    read_stats,
    running,
)

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
BODY = {"model": OPENAI_MODEL, "messages": MESSAGES}


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with running() as emulator:
        yield emulator


@pytest.fixture
async def http(emu: RunningEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=emu.base_url) as session:
        yield session


@pytest.fixture
def llm(emu: RunningEmulator) -> ChatOpenAI:
    return openai_chat(emu)


async def complete(http: aiohttp.ClientSession, body: Any) -> tuple[int, Any]:
    """POST a chat completion with the emulator's key; the status and the JSON body."""
    async with http.post("/v1/chat/completions", json=body, headers=BEARER) as resp:
        return resp.status, await resp.json()


async def sse_events(http: aiohttp.ClientSession, body: Any) -> list[bytes]:
    """POST a streamed chat completion; the data of each server-sent event."""
    async with http.post("/v1/chat/completions", json=body, headers=BEARER) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        raw = await resp.read()
    events = raw.split(b"\n\n")
    assert events[-1] == b""
    assert all(event.startswith(b"data: ") for event in events[:-1])
    return [event.removeprefix(b"data: ") for event in events[:-1]]


async def test_completion_wire_format(http: aiohttp.ClientSession) -> None:
    status, reply = await complete(http, BODY)

    assert status == 200
    assert reply["object"] == "chat.completion"
    assert reply["id"].startswith("chatcmpl-")
    assert isinstance(reply["created"], int)
    assert reply["model"] == OPENAI_MODEL
    [choice] = reply["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith(f"[{OPENAI_MODEL}] hello #")
    assert reply["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


async def test_content_parts_give_the_same_answer_as_a_string(
    http: aiohttp.ClientSession,
) -> None:
    parts = [{"type": "text", "text": "be"}, {"type": "text", "text": "brief"}]
    as_parts = [{"role": "system", "content": parts}, {"role": "user", "content": "hello"}]

    _, plain = await complete(http, BODY)
    _, split = await complete(http, {**BODY, "messages": as_parts})

    assert split["choices"][0]["message"] == plain["choices"][0]["message"]


async def test_any_model_name_is_answered(http: aiohttp.ClientSession) -> None:
    status, reply = await complete(http, {**BODY, "model": "my-own-model"})

    assert status == 200
    assert reply["choices"][0]["message"]["content"].startswith("[my-own-model] hello #")


async def test_stream_wire_format_with_usage(http: aiohttp.ClientSession) -> None:
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    events = await sse_events(http, body)

    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(event) for event in events[:-1]]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    _, whole = await complete(http, BODY)
    assert text == whole["choices"][0]["message"]["content"]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop"
    assert set(finishes[:-1]) == {None}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == whole["usage"]
    assert all(chunk["usage"] is None for chunk in chunks[:-1])


async def test_stream_without_usage_has_no_usage_chunk(http: aiohttp.ClientSession) -> None:
    events = await sse_events(http, {**BODY, "stream": True})

    chunks = [orjson.loads(event) for event in events[:-1]]
    assert all(chunk["choices"] for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks)


async def test_missing_key_is_401_in_openai_format(http: aiohttp.ClientSession) -> None:
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}):
        async with http.post("/v1/chat/completions", json=BODY, headers=headers) as resp:
            assert resp.status == 401
            error = (await resp.json())["error"]
        assert error["type"] == "invalid_request_error"
        assert error["param"] is None
        assert "API key" in error["message"]

    assert await read_stats(http) == ZERO_STATS  # refused before it reached a model


async def test_chat_openai_without_key_gets_authentication_error(emu: RunningEmulator) -> None:
    # The SDK insists on a key; `omit` drops the Authorization header it builds from it.
    with pytest.raises(openai.AuthenticationError) as excinfo:
        await openai_chat(emu).ainvoke("hello", extra_headers={"Authorization": openai.omit})

    assert excinfo.value.status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": MESSAGES}, "'model'"),
        ({"model": OPENAI_MODEL}, "'messages'"),
        ({"model": OPENAI_MODEL, "messages": []}, "'messages'"),
        ({**BODY, "messages": [{"role": "robot", "content": "x"}]}, "messages[0]"),
        ({**BODY, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({**BODY, "max_tokens": 0}, "'max_tokens'"),
        ({**BODY, "max_completion_tokens": "9"}, "'max_completion_tokens'"),
        ({**BODY, "temperature": 3}, "'temperature'"),
        ({**BODY, "stop": [1]}, "'stop'"),
        ({**BODY, "n": 2}, "'n'"),
        ({**BODY, "response_format": {"type": "xml"}}, "response_format"),
        ({**BODY, "response_format": {"type": "json_schema"}}, "json_schema.name"),
        ({**BODY, "messages": [{"role": "user", "content": "[[emulator:nope]]"}]}, "nope"),
        ([1, 2], "JSON body"),
    ],
)
async def test_bad_request_is_400_in_openai_format(
    http: aiohttp.ClientSession, body: Any, message: str
) -> None:
    status, reply = await complete(http, body)

    assert status == 400
    assert reply["error"]["type"] == "invalid_request_error"
    assert reply["error"]["param"] is None
    assert message in reply["error"]["message"]
    assert (await read_stats(http))["errors"] == 1


async def test_unknown_openai_route_is_404_in_openai_format(http: aiohttp.ClientSession) -> None:
    async with http.post("/v1/embeddings", json={}, headers=BEARER) as resp:
        assert resp.status == 404
        error = (await resp.json())["error"]

    assert error["type"] == "invalid_request_error"
    assert error["code"] == "not_found"


async def test_model_list_and_retrieve(http: aiohttp.ClientSession) -> None:
    async with http.get("/v1/models", headers=BEARER) as resp:
        assert resp.status == 200
        listing = await resp.json()
    async with http.get("/v1/models/anything-at-all", headers=BEARER) as resp:
        assert resp.status == 200
        one = await resp.json()
    async with http.get("/v1/models") as resp:
        assert resp.status == 401

    assert listing["object"] == "list"
    ids = [model["id"] for model in listing["data"]]
    assert {"gpt-4o-mini", "gpt-4.1-mini", "gemini-2.5-flash"} <= set(ids)
    assert {model["object"] for model in listing["data"]} == {"model"}
    assert one["id"] == "anything-at-all"


async def test_stats_count_openai_calls_by_api(http: aiohttp.ClientSession) -> None:
    await complete(http, BODY)
    await sse_events(http, {**BODY, "stream": True})
    await complete(http, {**BODY, "model": "gpt-4.1-mini", "max_tokens": -1})

    assert await read_stats(http) == {
        "calls": 3,
        "by_model": {OPENAI_MODEL: 2, "gpt-4.1-mini": 1},
        "stream_calls": 1,
        "errors": 1,
        "by_api": {"gemini": 0, "openai": 3},
    }


async def test_chat_openai_invoke_answer_and_usage(llm: ChatOpenAI) -> None:
    msg = await llm.ainvoke([("system", "be brief"), ("human", "hello there")])

    assert isinstance(msg.content, str)
    assert msg.content.startswith(f"[{OPENAI_MODEL}] hello there #")
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.response_metadata["model_name"] == OPENAI_MODEL
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["input_tokens"] == 4
    assert msg.usage_metadata["output_tokens"] == 4
    assert msg.usage_metadata["total_tokens"] == 8
    again = await llm.ainvoke([("system", "be brief"), ("human", "hello there")])
    assert again.content == msg.content


async def test_chat_openai_stream_joins_to_the_invoke_answer(emu: RunningEmulator) -> None:
    llm = openai_chat(emu, stream_usage=True)
    expected = await llm.ainvoke("one two three four")
    chunks = [chunk async for chunk in llm.astream("one two three four")]

    assert sum(1 for chunk in chunks if chunk.text) >= 2
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert isinstance(total, AIMessageChunk)
    assert total.text == expected.text
    assert total.response_metadata["finish_reason"] == "stop"
    assert total.usage_metadata is not None
    assert expected.usage_metadata is not None
    assert total.usage_metadata["total_tokens"] == expected.usage_metadata["total_tokens"]


async def test_chat_openai_max_tokens_truncates_with_length(emu: RunningEmulator) -> None:
    msg = await openai_chat(emu, max_tokens=2).ainvoke("one two three four")

    assert msg.content == f"[{OPENAI_MODEL}] one"
    assert msg.response_metadata["finish_reason"] == "length"
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["output_tokens"] == 2


async def test_chat_openai_stop_sequence_cuts_the_answer(emu: RunningEmulator) -> None:
    msg = await openai_chat(emu, stop=["three"]).ainvoke("one two three four")

    assert msg.content == f"[{OPENAI_MODEL}] one two "
    assert msg.response_metadata["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("status", "error_class", "kind", "code"),
    [
        (400, openai.BadRequestError, "invalid_request_error", None),
        (401, openai.AuthenticationError, "invalid_request_error", "invalid_api_key"),
        (403, openai.PermissionDeniedError, "permission_error", "permission_denied"),
        (404, openai.NotFoundError, "invalid_request_error", "not_found"),
        (409, openai.ConflictError, "invalid_request_error", None),
        (422, openai.UnprocessableEntityError, "invalid_request_error", None),
        (429, openai.RateLimitError, "requests", "rate_limit_exceeded"),
        (500, openai.InternalServerError, "server_error", None),
        (503, openai.InternalServerError, "server_error", "service_unavailable"),
        (504, openai.InternalServerError, "server_error", "timeout"),
    ],
)
async def test_status_directive_raises_the_openai_error(
    llm: ChatOpenAI, status: int, error_class: type[openai.APIStatusError], kind: str, code: str
) -> None:
    with pytest.raises(error_class) as excinfo:
        await llm.ainvoke(f"hello [[emulator:status={status}]]")

    assert excinfo.value.status_code == status
    assert excinfo.value.body == {
        "message": f"Emulated error {status}.",
        "type": kind,
        "param": None,
        "code": code,
    }
    assert (excinfo.value.type, excinfo.value.code) == (kind, code)
    assert "retry-after" not in excinfo.value.response.headers


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_sets_both_headers(llm: ChatOpenAI, status: int) -> None:
    with pytest.raises(openai.APIStatusError) as excinfo:
        await llm.ainvoke(f"hello [[emulator:status={status},retry_after=1.25]]")

    headers = excinfo.value.response.headers
    assert headers["retry-after"] == "2"
    assert headers["retry-after-ms"] == "1250"


async def test_reset_directive_is_a_connection_error(
    llm: ChatOpenAI, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(openai.APIConnectionError):
        await llm.ainvoke("hello [[emulator:reset]]")
    with pytest.raises(openai.APIConnectionError):
        _ = [chunk async for chunk in llm.astream("hello [[emulator:reset]]")]

    stats = await read_stats(http)
    assert (stats["calls"], stats["errors"], stats["stream_calls"]) == (2, 2, 1)


async def test_safety_block_is_content_filter(llm: ChatOpenAI) -> None:
    msg = await llm.ainvoke("hello [[emulator:block=safety]]")

    assert msg.content == ""
    assert msg.response_metadata["finish_reason"] == "content_filter"
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["output_tokens"] == 0


async def test_safety_block_in_a_stream(llm: ChatOpenAI) -> None:
    chunks = [chunk async for chunk in llm.astream("hello [[emulator:block=safety]]")]

    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.text == ""
    assert total.response_metadata["finish_reason"] == "content_filter"


async def test_prompt_block_is_400_content_filter(llm: ChatOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as excinfo:
        await llm.ainvoke("hello [[emulator:block=prompt]]")

    assert excinfo.value.code == "content_filter"


async def test_empty_directive_returns_empty_text(llm: ChatOpenAI) -> None:
    msg = await llm.ainvoke("hello [[emulator:empty]]")

    assert msg.content == ""
    assert msg.response_metadata["finish_reason"] == "stop"


async def test_delay_directive_slows_the_answer(llm: ChatOpenAI) -> None:
    started = time.perf_counter()
    msg = await llm.ainvoke("hello [[emulator:delay=200]]")

    assert time.perf_counter() - started >= 0.2
    assert msg.response_metadata["finish_reason"] == "stop"
