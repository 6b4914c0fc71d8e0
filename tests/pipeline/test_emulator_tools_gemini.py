"""Tests of the emulator's tool calls (`[[emulator:tool_calls=N]]`) on Gemini's API."""

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema
import pytest
from google import genai
from google.genai import errors, types
from langchain_core.messages import AIMessageChunk, HumanMessage, ToolMessage
from pydantic import BaseModel

from pipeline.emulator import EMULATOR_API_KEY, RunningEmulator
from pipeline.emulator.gemini_requests import from_openapi
from tests.support.emulator import (
    GEMINI_GENERATE,
    GEMINI_MODEL,
    gemini_chat,
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


@pytest.fixture(params=["v1", "v1beta"])
async def gclient(emu: RunningEmulator, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    options = types.HttpOptions(base_url=emu.base_url, api_version=request.param)
    sdk = genai.Client(api_key=EMULATOR_API_KEY, http_options=options)
    yield sdk.aio
    await sdk.aio.aclose()


def get_weather(city: str, days: int = 1) -> str:
    """Get the weather for a city."""
    return "sunny"


NO_AUTO_CALLS = types.AutomaticFunctionCallingConfig(disable=True)


async def gemini_post(http: aiohttp.ClientSession, body: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(GEMINI_GENERATE, json=body) as resp:
        return resp.status, await resp.json()


async def test_gemini_tool_calls_with_google_genai(gclient: Any) -> None:
    config = types.GenerateContentConfig(
        tools=[
            get_weather,
            types.Tool(function_declarations=[types.FunctionDeclaration(name="now")]),
        ],
        automatic_function_calling=NO_AUTO_CALLS,
    )
    reply = await gclient.models.generate_content(
        model=GEMINI_MODEL, contents="weather Paris [[emulator:tool_calls=3]]", config=config
    )

    calls = reply.function_calls or []
    assert [call.name for call in calls] == ["get_weather", "now", "get_weather"]
    assert calls[0].args["city"] == "weather Paris"
    assert isinstance(calls[0].args["days"], int)
    assert calls[1].args == {}
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert reply.text is None
    usage = reply.usage_metadata
    assert usage.candidates_token_count == sum(
        len(f"{call.name} {json.dumps(call.args, separators=(',', ':'))}".split()) for call in calls
    )


async def test_gemini_streamed_tool_calls_come_in_one_chunk(gclient: Any) -> None:
    config = types.GenerateContentConfig(
        tools=[get_weather], automatic_function_calling=NO_AUTO_CALLS
    )
    ask = "weather Paris [[emulator:tool_calls=2,chunks=5]]"
    plain = await gclient.models.generate_content(model=GEMINI_MODEL, contents=ask, config=config)
    stream = await gclient.models.generate_content_stream(
        model=GEMINI_MODEL, contents=ask, config=config
    )
    chunks = [chunk async for chunk in stream]

    [chunk] = chunks
    assert chunk.function_calls == plain.function_calls
    assert chunk.candidates[0].finish_reason == types.FinishReason.STOP
    assert chunk.usage_metadata == plain.usage_metadata


async def test_gemini_tool_calls_need_tools(gclient: Any) -> None:
    with pytest.raises(errors.ClientError) as excinfo:
        await gclient.models.generate_content(
            model=GEMINI_MODEL, contents="weather [[emulator:tool_calls=1]]"
        )

    assert excinfo.value.code == 400
    assert excinfo.value.status == "INVALID_ARGUMENT"
    assert excinfo.value.message == "tool_calls directive needs tools"


@pytest.mark.parametrize(
    "declaration",
    [
        # Gemini's OpenAPI subset, as LangChain sends it,
        {
            "name": "get_weather",
            "parameters": {
                "type": "OBJECT",
                "properties": {
                    "city": {"type": "STRING"},
                    "days": {"type": "INTEGER", "minimum": 1},
                    "note": {"type": "STRING", "nullable": True},
                },
                "required": ["city", "days"],
            },
        },
        # JSON Schema in camel case (the API's JSON names),
        {"name": "get_weather", "parametersJsonSchema": WEATHER_PARAMS},
        # and in snake case, as google-genai sends a Python function.
        {"name": "get_weather", "parameters_json_schema": WEATHER_PARAMS},
    ],
)
async def test_gemini_arguments_follow_each_schema_dialect(
    http: aiohttp.ClientSession, declaration: dict[str, Any]
) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Paris [[emulator:tool_calls=1]]"}]}],
        "tools": [{"functionDeclarations": [declaration]}],
    }
    status, reply = await gemini_post(http, body)

    assert status == 200
    [part] = reply["candidates"][0]["content"]["parts"]
    assert part["functionCall"]["name"] == "get_weather"
    schema = declaration.get("parametersJsonSchema") or declaration.get("parameters_json_schema")
    jsonschema.validate(
        part["functionCall"]["args"], schema or from_openapi(declaration["parameters"])
    )


@pytest.mark.parametrize(
    ("config", "text", "names"),
    [
        ({"mode": "NONE"}, "x [[emulator:tool_calls=2]]", []),
        ({"mode": "ANY"}, "x", ["a"]),
        ({"mode": "AUTO"}, "x", []),
        ({"mode": "ANY", "allowedFunctionNames": ["b"]}, "x [[emulator:tool_calls=2]]", ["b", "b"]),
    ],
)
async def test_gemini_function_calling_config(
    http: aiohttp.ClientSession, config: dict[str, Any], text: str, names: list[str]
) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "tools": [{"functionDeclarations": [{"name": "a"}, {"name": "b"}]}],
        "toolConfig": {"functionCallingConfig": config},
    }
    status, reply = await gemini_post(http, body)

    assert status == 200
    parts = reply["candidates"][0]["content"]["parts"]
    assert [part["functionCall"]["name"] for part in parts if "functionCall" in part] == names
    if not names:
        assert parts[0]["text"].startswith(f"[{GEMINI_MODEL}] x #")


async def test_gemini_unknown_allowed_function_is_400(http: aiohttp.ClientSession) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "x"}]}],
        "tools": [{"functionDeclarations": [{"name": "a"}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["z"]}},
    }
    status, reply = await gemini_post(http, body)

    assert status == 400
    assert "z" in reply["error"]["message"]


async def test_gemini_tool_round_trip_answers_with_the_result(http: aiohttp.ClientSession) -> None:
    ask = {"role": "user", "parts": [{"text": "Paris [[emulator:tool_calls=2]]"}]}
    tools = [
        {"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": WEATHER_PARAMS}]}
    ]
    _, first = await gemini_post(http, {"contents": [ask], "tools": tools})
    model_turn = first["candidates"][0]["content"]
    results = {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
            {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
        ],
    }

    status, second = await gemini_post(
        http, {"contents": [ask, model_turn, results], "tools": tools}
    )

    assert status == 200
    [part] = second["candidates"][0]["content"]["parts"]
    assert part["text"].startswith(
        f'[{GEMINI_MODEL}] tool result: sunny tool result: {{"temp":21}} #'
    )
    assert second["candidates"][0]["finishReason"] == "STOP"
    assert second["usageMetadata"]["candidatesTokenCount"] == len(part["text"].split())


async def test_chat_google_bind_tools_invoke_stream_and_round_trip(emu: RunningEmulator) -> None:
    ask = "weather in Paris [[emulator:tool_calls=2]]"
    async with gemini_chat(emu) as chat:
        llm = chat.bind_tools([Weather])
        message = await llm.ainvoke(ask)
        chunks = [chunk async for chunk in llm.astream(ask)]
        results = [ToolMessage("it rains", tool_call_id=call["id"]) for call in message.tool_calls]
        answer = await llm.ainvoke([HumanMessage(ask), message, *results])

    assert [call["name"] for call in message.tool_calls] == ["Weather", "Weather"]
    for call in message.tool_calls:
        Weather.model_validate(call["args"])
    assert [c["name"] for chunk in chunks for c in chunk.tool_call_chunks] == ["Weather"] * 2
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert isinstance(total, AIMessageChunk)
    assert [call["args"] for call in total.tool_calls] == [c["args"] for c in message.tool_calls]
    assert total.usage_metadata == message.usage_metadata
    assert answer.tool_calls == []
    assert answer.text.startswith(f"[{GEMINI_MODEL}] tool result: it rains tool result: it rains #")
