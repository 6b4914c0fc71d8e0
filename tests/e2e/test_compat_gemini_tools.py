"""Function calling through the Gemini API: declarations in, functionCall parts out, and
functionResponse parts back in as tool results, with google-genai and LangChain."""

import json
from collections.abc import AsyncIterator

import pytest
from google import genai
from google.genai import types
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway
from tests.support.genai_clients import VERSIONS, gemini_chat_on, genai_client, header

ASK = "weather in Oslo? [[emulator:tool_calls=1]]"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="The weather in a city",
    parameters=types.Schema(
        type=types.Type.OBJECT,
        properties={"city": types.Schema(type=types.Type.STRING)},
        required=["city"],
    ),
)
TOOLS = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])


@pytest.fixture(params=VERSIONS)
async def client(request: pytest.FixtureRequest, gateway: Gateway) -> AsyncIterator[genai.Client]:
    async with genai_client(gateway.url, str(request.param)) as sdk:
        yield sdk


def answered(first: types.GenerateContentResponse) -> list[types.Content]:
    """The conversation after `first`'s call: the question, the call, the function's result."""
    [call] = first.function_calls or []
    result = types.Part.from_function_response(name=call.name, response={"temp": 20})
    return [
        types.Content(role="user", parts=[types.Part(text=ASK)]),
        first.candidates[0].content,
        types.Content(role="user", parts=[result]),
    ]


async def test_a_call_and_its_result_round_trip(client: genai.Client, emulator: Emulator):
    first = await client.aio.models.generate_content(model="flash", contents=ASK, config=TOOLS)

    [call] = first.function_calls or []
    assert call.name == "get_weather"
    assert isinstance(call.args["city"], str)
    assert call.id == "call_1_0_get_weather", "promptbus names a call Gemini left unnamed"
    assert first.candidates[0].finish_reason == types.FinishReason.STOP
    assert first.text is None

    second = await client.aio.models.generate_content(
        model="flash", contents=answered(first), config=TOOLS
    )
    assert second.text.startswith("[gemini-2.5-flash] tool result: ")
    assert json.loads(second.text.split("tool result: ")[1].rsplit(" #", 1)[0]) == {"temp": 20}
    assert await emulator.calls() == 2


async def test_a_tool_turn_shares_the_cache_with_the_generate_api(
    gateway: Gateway, emulator: Emulator
):
    async with genai_client(gateway.url, "v1beta") as sdk:
        first = await sdk.aio.models.generate_content(model="flash", contents=ASK, config=TOOLS)
        second = await sdk.aio.models.generate_content(
            model="flash", contents=answered(first), config=TOOLS
        )
    [call] = first.function_calls or []

    native = await gateway.generate(
        {
            "model": "flash",
            "messages": [
                {"role": "user", "content": ASK},
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"id": call.id, "name": call.name, "arguments": call.args}],
                },
                {"role": "tool", "tool_call_id": call.id, "content": '{"temp":20}'},
            ],
            "tools": [
                {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                }
            ],
        }
    )

    assert native.status == 200, native.body
    assert native.header("X-Cache") == "HIT"
    assert native.body["text"] == second.text
    assert await emulator.calls() == 2


async def test_a_history_without_call_ids_means_the_same(client: genai.Client, emulator: Emulator):
    first = await client.aio.models.generate_content(model="flash", contents=ASK, config=TOOLS)
    with_ids = answered(first)
    [call] = first.function_calls or []
    bare = types.FunctionCall(name=call.name, args=call.args)
    without = [with_ids[0], types.Content(role="model", parts=[types.Part(function_call=bare)])]

    again = await client.aio.models.generate_content(
        model="flash", contents=[*without, with_ids[2]], config=TOOLS
    )
    assert header(again, "x-cache") == "MISS"
    second = await client.aio.models.generate_content(
        model="flash", contents=with_ids, config=TOOLS
    )

    assert header(second, "x-cache") == "HIT"
    assert second.text == again.text
    assert await emulator.calls() == 2


async def test_a_streamed_call_comes_in_the_last_chunk(client: genai.Client):
    stream = await client.aio.models.generate_content_stream(
        model="flash", contents=ASK, config=TOOLS
    )
    chunks = [chunk async for chunk in stream]

    [call] = chunks[-1].function_calls or []
    assert call.name == "get_weather"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


@pytest.mark.parametrize(
    ("mode", "names", "calls"),
    [("NONE", None, False), ("ANY", ["get_weather"], True), ("ANY", None, True)],
)
async def test_function_calling_modes_reach_the_model(
    client: genai.Client, mode: str, names: list[str] | None, calls: bool
):
    calling = types.FunctionCallingConfig(mode=mode, allowed_function_names=names)
    config = TOOLS.model_copy(
        update={"tool_config": types.ToolConfig(function_calling_config=calling)}
    )

    answer = await client.aio.models.generate_content(
        model="flash", contents="weather in Oslo?", config=config
    )

    assert bool(answer.function_calls) is calls
    assert bool(answer.text) is not calls


async def test_langchain_binds_tools_through_promptbus(gateway: Gateway):
    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    async with gemini_chat_on(gateway.url) as llm:
        bound = llm.bind_tools([get_weather])
        question = HumanMessage(content=ASK)
        reply = await bound.ainvoke([question])
        [call] = reply.tool_calls
        result = ToolMessage(content="sunny", tool_call_id=call["id"], name=call["name"])
        answer = await bound.ainvoke([question, reply, result])

    assert call["name"] == "get_weather"
    assert isinstance(call["args"]["city"], str)
    assert answer.text.startswith("[gemini-2.5-flash] tool result: ")
    assert "sunny" in answer.text
