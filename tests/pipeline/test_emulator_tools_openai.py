"""Tests of the emulator's tool calls (`[[emulator:tool_calls=N]]`) on OpenAI's API."""

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema
import openai
import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage, ToolMessage
from pydantic import BaseModel

from pipeline.emulator import RunningEmulator
from tests.support.emulator import (
    BEARER,
    OPENAI_MODEL,
    openai_chat,
    read_stats,
    running,
)

WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
        "unit": {"enum": ["C", "F"]},
    },
    "required": ["city", "days"],
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_PARAMS},
    },
    {"type": "function", "function": {"name": "now", "description": "The time"}},
]
ASK = "weather in Paris [[emulator:tool_calls=3]]"


class Weather(BaseModel):
    """Get the weather for a city."""

    city: str
    days: int


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


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


async def test_openai_tool_calls_cycle_over_the_offered_functions(
    client: openai.AsyncOpenAI,
) -> None:
    reply = await client.chat.completions.create(
        model=OPENAI_MODEL, messages=[user(ASK)], tools=TOOLS
    )

    [choice] = reply.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    names = [call.function.name for call in calls if call.type == "function"]
    assert names == ["get_weather", "now", "get_weather"]
    assert len({call.id for call in calls}) == 3
    assert all(call.id.startswith("call_") for call in calls)
    arguments = [json.loads(call.function.arguments) for call in calls if call.type == "function"]
    jsonschema.validate(arguments[0], WEATHER_PARAMS)
    assert arguments[1] == {}
    assert reply.usage is not None
    expected = sum(
        len(f"{call.function.name} {call.function.arguments}".split())
        for call in calls
        if call.type == "function"
    )
    assert reply.usage.completion_tokens == expected
    again = await client.chat.completions.create(
        model=OPENAI_MODEL, messages=[user(ASK)], tools=TOOLS
    )
    assert again.choices[0].message.tool_calls == calls  # ids and arguments are deterministic


async def test_openai_streamed_tool_calls_join_to_the_plain_ones(
    client: openai.AsyncOpenAI,
) -> None:
    ask = "weather in Paris [[emulator:tool_calls=2,chunks=4]]"
    plain = await client.chat.completions.create(
        model=OPENAI_MODEL, messages=[user(ask)], tools=TOOLS
    )
    stream = await client.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[user(ask)],
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )

    heads: dict[int, Any] = {}
    fragments: dict[int, list[str]] = {}
    finishes, usage = [], None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finishes.append(choice.finish_reason)
            for delta in choice.delta.tool_calls or []:
                assert delta.function is not None
                if delta.id is not None:
                    assert delta.index not in heads
                    assert (delta.type, delta.function.arguments) == ("function", "")
                    heads[delta.index] = delta
                    fragments[delta.index] = []
                else:
                    assert delta.function.name is None
                    fragments[delta.index].append(delta.function.arguments or "")
    expected = plain.choices[0].message.tool_calls or []
    assert [heads[i].id for i in sorted(heads)] == [call.id for call in expected]
    assert [heads[i].function.name for i in sorted(heads)] == ["get_weather", "now"]
    joined = ["".join(fragments[i]) for i in sorted(fragments)]
    assert joined == [call.function.arguments for call in expected if call.type == "function"]
    assert len(fragments[0]) == 4  # chunks=4 splits each argument string
    assert len(fragments[1]) == 2  # "{}" has two characters only
    assert finishes[-1] == "tool_calls"
    assert set(finishes[:-1]) == {None}
    assert usage == plain.usage


async def test_openai_tool_calls_need_tools(
    client: openai.AsyncOpenAI, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(openai.BadRequestError, match="tool_calls directive needs tools"):
        await client.chat.completions.create(model=OPENAI_MODEL, messages=[user(ASK)])

    assert (await read_stats(http))["errors"] == 1


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"tool_choice": "none"}, []),
        ({"tool_choice": "auto"}, ["get_weather", "now", "get_weather"]),
        ({"parallel_tool_calls": False}, ["get_weather"]),
        ({"tool_choice": {"type": "function", "function": {"name": "now"}}}, ["now"] * 3),
    ],
)
async def test_openai_tool_choice_and_parallel_tool_calls(
    client: openai.AsyncOpenAI, options: dict[str, Any], names: list[str]
) -> None:
    reply = await client.chat.completions.create(
        model=OPENAI_MODEL, messages=[user(ASK)], tools=TOOLS, **options
    )

    message = reply.choices[0].message
    calls = message.tool_calls or []
    assert [call.function.name for call in calls if call.type == "function"] == names
    if not names:
        assert message.content is not None
        assert message.content.startswith(f"[{OPENAI_MODEL}] weather in Paris #")
        assert reply.choices[0].finish_reason == "stop"


async def test_openai_required_tool_choice_calls_without_the_directive(
    client: openai.AsyncOpenAI,
) -> None:
    plain = await client.chat.completions.create(
        model=OPENAI_MODEL, messages=[user("weather?")], tools=TOOLS
    )
    required = await client.chat.completions.create(
        model=OPENAI_MODEL, messages=[user("weather?")], tools=TOOLS, tool_choice="required"
    )

    assert plain.choices[0].message.tool_calls is None
    assert plain.choices[0].finish_reason == "stop"
    calls = required.choices[0].message.tool_calls or []
    assert [call.function.name for call in calls if call.type == "function"] == ["get_weather"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "'nope'"),
        ({"tool_choice": "sometimes"}, "'tool_choice'"),
        ({"parallel_tool_calls": "yes"}, "'parallel_tool_calls'"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0]"),
    ],
)
async def test_openai_bad_tool_fields_are_400(
    http: aiohttp.ClientSession, options: dict[str, Any], message: str
) -> None:
    body = {"model": OPENAI_MODEL, "messages": [user(ASK)], "tools": TOOLS, **options}
    async with http.post("/v1/chat/completions", json=body, headers=BEARER) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]

    assert message in error["message"]


async def test_openai_tool_round_trip_answers_with_the_result(
    client: openai.AsyncOpenAI,
) -> None:
    first = await client.chat.completions.create(
        model=OPENAI_MODEL, messages=[user(ASK)], tools=TOOLS, parallel_tool_calls=False
    )
    [call] = first.choices[0].message.tool_calls or []
    assert call.type == "function"
    history: list[Any] = [
        user(ASK),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "sunny,  21 C"},
    ]

    second = await client.chat.completions.create(model=OPENAI_MODEL, messages=history, tools=TOOLS)

    message = second.choices[0].message
    assert message.tool_calls is None  # the directive still in the user turn is not obeyed
    assert second.choices[0].finish_reason == "stop"
    assert message.content is not None
    assert message.content.startswith(f"[{OPENAI_MODEL}] tool result: sunny,  21 C #")
    assert second.usage is not None
    assert second.usage.completion_tokens == len(message.content.split())


async def test_openai_tool_message_needs_its_call_id(http: aiohttp.ClientSession) -> None:
    messages = [user("hi"), {"role": "tool", "content": "sunny"}]
    body = {"model": OPENAI_MODEL, "messages": messages, "tools": TOOLS}
    async with http.post("/v1/chat/completions", json=body, headers=BEARER) as resp:
        assert resp.status == 400
        assert "tool_call_id" in (await resp.json())["error"]["message"]


async def test_chat_openai_bind_tools_invoke_stream_and_round_trip(emu: RunningEmulator) -> None:
    llm = openai_chat(emu, use_responses_api=False, stream_usage=True).bind_tools([Weather])
    ask = "weather in Paris [[emulator:tool_calls=2]]"

    message = await llm.ainvoke(ask)
    chunks = [chunk async for chunk in llm.astream(ask)]

    assert [call["name"] for call in message.tool_calls] == ["Weather", "Weather"]
    for call in message.tool_calls:
        Weather.model_validate(call["args"])
    assert message.response_metadata["finish_reason"] == "tool_calls"
    assert any(chunk.tool_call_chunks for chunk in chunks)
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert isinstance(total, AIMessageChunk)
    assert total.tool_calls == message.tool_calls
    assert total.usage_metadata == message.usage_metadata
    results = [ToolMessage("it rains", tool_call_id=call["id"]) for call in message.tool_calls]
    answer = await llm.ainvoke([HumanMessage(ask), message, *results])
    assert answer.tool_calls == []
    assert answer.text == answer.content
    assert answer.text.startswith(f"[{OPENAI_MODEL}] tool result: it rains tool result: it rains #")


async def test_openai_an_assistant_turn_last_gets_text_not_calls(
    client: openai.AsyncOpenAI,
) -> None:
    messages: list[Any] = [user(ASK), {"role": "assistant", "content": "Let me"}]
    reply = await client.chat.completions.create(model=OPENAI_MODEL, messages=messages, tools=TOOLS)

    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason == "stop"


async def test_openai_cut_counts_tool_call_deltas(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[user("weather [[emulator:tool_calls=1,cut=2]]")],
        tools=TOOLS,
        stream=True,
    )
    received: list[Any] = []

    async def drain() -> None:
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises(openai.APIConnectionError):
        await drain()

    deltas = [d for c in received for d in c.choices[0].delta.tool_calls or []]
    assert len(deltas) == 2  # the call's head and its first argument fragment
    assert deltas[0].id is not None
    assert deltas[1].id is None
