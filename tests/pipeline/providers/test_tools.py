"""Tool calls through both providers over real HTTP: the real LangChain clients on the emulator."""

from collections.abc import AsyncIterator

import pytest

from pipeline.providers.base import ToolOffer
from pipeline.providers.langchain_base import LangChainProvider
from pipeline.providers.messages import call_id
from schemas import GenerationParams, Message, Role, Tool
from schemas.stages import Generation
from tests.support.emulator import Emulator
from tests.support.providers import PARAMS, ask, gemini_on, openai_on

WEATHER = Tool(
    name="get_weather",
    description="The weather in a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city", "days"],
    },
)
TIME = Tool(name="get_time", description="The time now")
MODELS = {"gemini": "gemini-2.5-flash", "openai": "gpt-4o-mini"}
# What each API reports for an answer of tool calls (left as the provider said it).
TOOL_FINISH = {"gemini": "stop", "openai": "tool_calls"}


@pytest.fixture(params=["gemini", "openai"])
async def provider(
    request: pytest.FixtureRequest, emulator: Emulator
) -> AsyncIterator[LangChainProvider]:
    if request.param == "gemini":
        async with gemini_on(emulator.base_url) as gemini:
            yield gemini
    else:
        async with openai_on(f"{emulator.base_url}/v1") as openai:
            yield openai


def model_of(provider: LangChainProvider) -> str:
    return MODELS[provider.name]


async def test_the_model_calls_the_offered_tools_then_answers_with_their_results(
    provider: LangChainProvider,
):
    # Given a question the emulator answers with two tool calls
    question = ask("weather in Oslo? [[emulator:tool_calls=2]]")
    offer = ToolOffer((WEATHER, TIME))

    # When it is asked with the tools offered
    called = await provider.generate(model_of(provider), question, PARAMS, tools=offer)

    # Then the answer is the calls, with arguments valid for each tool, and no text
    assert [c.name for c in called.tool_calls] == ["get_weather", "get_time"]
    weather = called.tool_calls[0].arguments
    assert isinstance(weather["city"], str)
    assert isinstance(weather["days"], int)
    assert weather["days"] >= 1
    assert called.tool_calls[1].arguments == {}
    assert called.text == ""
    assert called.finish_reason == TOOL_FINISH[provider.name]
    assert len({c.id for c in called.tool_calls}) == 2

    # When the calls and their results go back
    results = tuple(
        Message(role=Role.TOOL, tool_call_id=c.id, content=f"result of {c.name}: sunny, 21 C")
        for c in called.tool_calls
    )
    follow_up = (*question, Message(role=Role.ASSISTANT, tool_calls=called.tool_calls), *results)
    answered = await provider.generate(model_of(provider), follow_up, PARAMS, tools=offer)

    # Then the model answers with text holding the results verbatim
    assert "result of get_weather: sunny, 21 C" in answered.text
    assert "result of get_time: sunny, 21 C" in answered.text
    assert answered.tool_calls == ()
    assert answered.finish_reason == "stop"


async def test_gemini_calls_get_deterministic_ids_and_openai_keeps_its_own(
    provider: LangChainProvider,
):
    question = ask("weather? [[emulator:tool_calls=1]]")

    first = await provider.generate(
        model_of(provider), question, PARAMS, tools=ToolOffer((WEATHER,))
    )
    again = await provider.generate(
        model_of(provider), question, PARAMS, tools=ToolOffer((WEATHER,))
    )

    (call,) = first.tool_calls
    if provider.name == "gemini":
        # Gemini sent no id (langchain-google-genai made up a random one): promptbus names it
        assert call.id == call_id(1, 0, "get_weather")
    else:
        assert call.id.startswith("call_")
    assert again.tool_calls == first.tool_calls


async def test_required_forces_a_call_and_none_forbids_one(provider: LangChainProvider):
    # Without the directive the emulator calls a tool only when told it must
    required = await provider.generate(
        model_of(provider), ask("anything"), PARAMS, tools=ToolOffer((WEATHER,), "required")
    )
    forbidden = await provider.generate(
        model_of(provider),
        ask("anything [[emulator:tool_calls=2]]"),
        PARAMS,
        tools=ToolOffer((WEATHER,), "none"),
    )

    assert [c.name for c in required.tool_calls] == ["get_weather"]
    assert forbidden.tool_calls == ()
    assert forbidden.text


async def test_a_named_choice_calls_that_tool_only(provider: LangChainProvider):
    answer = await provider.generate(
        model_of(provider),
        ask("what time is it? [[emulator:tool_calls=2]]"),
        PARAMS,
        tools=ToolOffer((WEATHER, TIME), "get_time"),
    )

    assert {c.name for c in answer.tool_calls} == {"get_time"}


async def test_parallel_tool_calls_false_limits_openai_to_one_call(provider: LangChainProvider):
    answer = await provider.generate(
        model_of(provider),
        ask("weather? [[emulator:tool_calls=3]]"),
        PARAMS,
        tools=ToolOffer((WEATHER,), parallel_tool_calls=False),
    )

    # Gemini has no such switch: it is not sent there, and the three calls come
    assert len(answer.tool_calls) == (1 if provider.name == "openai" else 3)


async def test_a_streamed_answer_of_tool_calls_has_them_whole_at_the_end(
    provider: LangChainProvider,
):
    parts = [
        part
        async for part in provider.stream(
            model_of(provider),
            ask("weather? [[emulator:tool_calls=2]]"),
            PARAMS,
            tools=ToolOffer((WEATHER, TIME)),
        )
    ]

    *deltas, whole = parts
    assert deltas == []  # tool calls are never deltas, and there is no text
    assert isinstance(whole, Generation)
    assert [c.name for c in whole.tool_calls] == ["get_weather", "get_time"]
    assert isinstance(whole.tool_calls[0].arguments["city"], str)
    assert whole.finish_reason == TOOL_FINISH[provider.name]


async def test_an_end_user_and_a_seed_are_accepted(provider: LangChainProvider):
    answer = await provider.generate(
        model_of(provider), ask("hello"), GenerationParams(seed=7), user="end-user-1"
    )

    assert answer.text


async def test_gemini_sends_the_seed(emulator: Emulator):
    # The emulator's answer depends on the whole generation config: a seed changes it
    async with gemini_on(emulator.base_url) as gemini:
        texts = [
            (await gemini.generate(MODELS["gemini"], ask("hello"), GenerationParams(seed=s))).text
            for s in (1, 1, 2)
        ]

    assert texts[0] == texts[1] != texts[2]
