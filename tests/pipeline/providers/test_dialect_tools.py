"""Each dialect binds tools in its family's terms; a family without tools is refused."""

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.runnables import RunnableBinding
from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_openai import ChatOpenAI

from pipeline.errors import ValidationFailed
from pipeline.providers.base import ToolOffer
from pipeline.providers.custom import CustomProvider
from pipeline.providers.dialects import GEMINI, GENERIC, OPENAI, dialect_of
from schemas import GenerationParams, Tool
from tests.support.providers import PARAMS, ask

WEATHER = Tool(
    name="get_weather",
    description="The weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
TIME = Tool(name="get_time")
FUNCTIONS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {"type": "function", "function": {"name": "get_time"}},
]


def bound_kwargs(bound: Any) -> dict[str, Any]:
    assert isinstance(bound, RunnableBinding)
    return dict(bound.kwargs)


def openai_model() -> ChatOpenAI:
    return ChatOpenAI(model="gpt-4o-mini", api_key="unused", base_url="http://127.0.0.1:9/v1")


def gemini_model() -> ChatGoogleGenerativeAI:
    return ChatGoogleGenerativeAI(
        model="gemini-2.5-flash", google_api_key="unused", base_url="http://127.0.0.1:9"
    )


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        (None, None),
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("get_time", {"type": "function", "function": {"name": "get_time"}}),
    ],
)
def test_openai_sends_function_tools_and_its_own_tool_choice(choice: Any, sent: Any):
    kwargs = bound_kwargs(OPENAI.bind_tools(openai_model(), (WEATHER, TIME), choice, False))

    assert kwargs["tools"] == FUNCTIONS
    assert kwargs.get("tool_choice") == sent
    assert kwargs["parallel_tool_calls"] is False


def test_openai_leaves_parallel_tool_calls_unsaid_when_unset():
    kwargs = bound_kwargs(OPENAI.bind_tools(openai_model(), (TIME,), None, None))

    assert "parallel_tool_calls" not in kwargs


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        (None, None),
        ("auto", "auto"),
        ("none", "none"),
        ("required", "any"),
        ("get_time", "get_time"),
    ],
)
def test_gemini_names_tool_choice_its_way_and_has_no_parallel_switch(choice: Any, sent: Any):
    kwargs = bound_kwargs(GEMINI.bind_tools(gemini_model(), (WEATHER, TIME), choice, False))

    assert kwargs["tools"] == FUNCTIONS
    assert kwargs.get("tool_choice") == sent
    assert "parallel_tool_calls" not in kwargs


def test_seed_and_user_go_where_each_family_takes_them():
    params = GenerationParams(seed=7, temperature=0.1)

    assert OPENAI.call_kwargs(params) == {"seed": 7, "temperature": 0.1}
    assert OPENAI.user_kwargs("end-user") == {"user": "end-user"}
    # Gemini takes seed (a GenerateContentConfig field) at call time, and has no user field
    assert GEMINI.call_kwargs(params) == {"seed": 7, "temperature": 0.1}
    assert GEMINI.user_kwargs("end-user") == {}
    assert GENERIC.user_kwargs("end-user") == {}


def test_a_family_without_tools_is_refused_with_a_422_naming_tools():
    model = FakeListChatModel(responses=["hi"])
    assert dialect_of(model) is GENERIC

    with pytest.raises(ValidationFailed) as refused:
        GENERIC.bind_tools(model, (TIME,), None, None)

    assert refused.value.status == 422
    assert refused.value.field == "tools"
    assert "FakeListChatModel does not support tools" in refused.value.message


class _ToolTakingModel(FakeListChatModel):
    """A family promptbus does not know, that does take tools."""

    def bind_tools(self, tools: Any, *, tool_choice: str | None = None, **kwargs: Any) -> Any:
        return self.bind(tools=list(tools), tool_choice=tool_choice)


def test_an_unknown_family_that_takes_tools_gets_them():
    kwargs = bound_kwargs(
        GENERIC.bind_tools(_ToolTakingModel(responses=["hi"]), (TIME,), "auto", True)
    )

    assert kwargs == {"tools": FUNCTIONS[1:], "tool_choice": "auto"}


async def test_a_custom_provider_without_tools_refuses_before_any_call():
    def factory(model: str) -> BaseChatModel:
        return FakeListChatModel(responses=["never sent"])

    provider = CustomProvider("fake", factory, spec="tests:fake", timeout_s=1)

    with pytest.raises(ValidationFailed):
        await provider.generate("m", ask("hi"), PARAMS, tools=ToolOffer((TIME,)))
