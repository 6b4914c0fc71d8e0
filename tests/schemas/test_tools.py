"""Tools on the request: what a conversation with tool calls may hold, and what it may not."""

from typing import Any

import pydantic
import pytest

from schemas import GenerateRequest, GenerateResponse, Message, Role, ToolCall

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
ASK = {"role": "user", "content": "weather in Oslo?"}
CALLED = {
    "role": "assistant",
    "tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}],
}
ANSWERED = {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"}


def request(**body: Any) -> GenerateRequest:
    return GenerateRequest.model_validate({"model": "flash", **body})


def refusal(**body: Any) -> tuple[str, str]:
    """The location and message of the first error `body` is refused with."""
    with pytest.raises(pydantic.ValidationError) as refused:
        request(**body)
    first = refused.value.errors(include_url=False)[0]
    return ".".join(str(part) for part in first["loc"]), first["msg"]


def test_a_whole_tool_turn_is_a_request():
    # Given a question, the assistant's tool call and the tool's result, with tools offered
    req = request(
        messages=[ASK, CALLED, ANSWERED],
        tools=[WEATHER],
        tool_choice="get_weather",
        parallel_tool_calls=False,
        user="end-user-7",
        params={"seed": 42},
    )

    # Then it holds each part, the call's content empty
    assert req.messages is not None
    assert req.messages[-1].role is Role.TOOL
    assert req.messages[1].content == ""
    assert req.messages[1].tool_calls == (
        ToolCall(id="call_1", name="get_weather", arguments={"city": "Oslo"}),
    )
    assert req.tools is not None
    assert req.tools[0].parameters == WEATHER["parameters"]
    assert (req.tool_choice, req.parallel_tool_calls, req.user) == (
        "get_weather",
        False,
        "end-user-7",
    )
    assert req.params.seed == 42
    # And it survives the wire
    assert GenerateRequest.model_validate_json(req.model_dump_json()) == req


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_tool_choice_modes(choice: str):
    assert request(prompt="hi", tools=[WEATHER], tool_choice=choice).tool_choice == choice


@pytest.mark.parametrize(
    ("body", "where", "says"),
    [
        ({"prompt": "hi", "tool_choice": "auto"}, "tool_choice", "goes with 'tools'"),
        ({"prompt": "hi", "parallel_tool_calls": True}, "parallel_tool_calls", "goes with"),
        (
            {"prompt": "hi", "tools": [WEATHER], "tool_choice": "get_time"},
            "tool_choice",
            "names none of the tools",
        ),
        ({"prompt": "hi", "tools": [WEATHER, WEATHER]}, "tools", "distinct"),
        ({"prompt": "hi", "tools": []}, "tools", "at least 1"),
        (
            {"prompt": "hi", "tools": [WEATHER], "response_schema": {"type": "object"}},
            "tools",
            "cannot be combined with 'response_schema'",
        ),
        ({"prompt": "hi", "tools": [{**WEATHER, "name": "has space"}]}, "tools.0.name", "pattern"),
        (
            {"prompt": "hi", "tools": [{**WEATHER, "parameters": {"type": "string"}}]},
            "tools.0.parameters",
            "describe an object",
        ),
        (
            {"prompt": "hi", "tools": [{**WEATHER, "description": "x" * 4097}]},
            "tools.0.description",
            "4096",
        ),
        ({"prompt": "hi", "user": "u" * 257}, "user", "256"),
        ({"prompt": "hi", "tool_choice": 3, "tools": [WEATHER]}, "tool_choice", "Input should be"),
    ],
)
def test_request_level_refusals_name_the_field(body: dict[str, Any], where: str, says: str):
    location, message = refusal(**body)

    assert location.startswith(where), (location, message)
    assert says in message


@pytest.mark.parametrize(
    ("messages", "where", "says"),
    [
        # A tool result must answer a call made earlier in the conversation
        ([ASK, {**ANSWERED, "tool_call_id": "call_9"}], "messages", "answers no tool call"),
        ([ASK, ANSWERED, CALLED, ASK], "messages", "answers no tool call"),
        ([ASK, CALLED, ANSWERED, CALLED, ASK], "messages", "used twice"),
        # Tool calls only on assistant messages; a tool_call_id only (and always) on tool ones
        ([{**CALLED, "role": "user", "content": "x"}], "messages.0", "only an assistant"),
        ([ASK, CALLED, {"role": "tool", "content": "r"}], "messages.2", "'tool_call_id'"),
        ([{**ASK, "tool_call_id": "call_1"}], "messages.0", "'tool_call_id'"),
        # Content may be empty only where there are tool calls
        ([{"role": "user", "content": ""}], "messages.0", "may be empty only"),
        ([ASK, {"role": "assistant", "content": ""}, ASK], "messages.1", "may be empty only"),
        ([ASK, CALLED, {**ANSWERED, "content": ""}], "messages.2", "may be empty only"),
        ([{"role": "system", "content": ""}, ASK], "messages.0", "may be empty only"),
        # A tool call's shape
        ([ASK, {**CALLED, "tool_calls": []}, ASK], "messages.1.tool_calls", "at least 1"),
        (
            [ASK, {**CALLED, "tool_calls": [{"id": "", "name": "f", "arguments": {}}]}, ASK],
            "messages.1.tool_calls.0.id",
            "at least 1",
        ),
        (
            [ASK, {**CALLED, "tool_calls": [{"id": "a", "name": "f", "arguments": [1]}]}, ASK],
            "messages.1.tool_calls.0.arguments",
            "dictionary",
        ),
        # The last turn is the model's to answer: a question or a tool's result
        ([ASK, CALLED], "", "the last message must have role 'user' or 'tool'"),
    ],
)
def test_conversation_refusals_name_the_message(
    messages: list[dict[str, Any]], where: str, says: str
):
    location, message = refusal(messages=messages)

    assert location.startswith(where), (location, message)
    assert says in message


def test_tool_calls_are_bounded():
    calls = [{"id": f"c{i}", "name": "f", "arguments": {}} for i in range(65)]

    location, message = refusal(messages=[ASK, {**CALLED, "tool_calls": calls}, ASK])

    assert location == "messages.1.tool_calls"
    assert "at most 64" in message


def test_content_keeps_its_limit_on_every_role():
    with pytest.raises(pydantic.ValidationError):
        Message(role=Role.ASSISTANT, content="x" * 200_001)


def test_a_response_without_tool_calls_has_none_and_with_them_keeps_them():
    base = {
        "id": "gen_1",
        "model": "flash",
        "provider_model": "gemini-2.5-flash",
        "provider": "gemini",
        "text": "",
        "finish_reason": "stop",
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
        "cost": {"input_usd": 0, "output_usd": 0, "total_usd": 0},
        "cache": {"hit": False, "key": "k"},
        "created": 1.0,
    }
    call = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}

    assert GenerateResponse.model_validate(base).tool_calls == ()
    response = GenerateResponse.model_validate({**base, "tool_calls": [call]})
    assert GenerateResponse.model_validate_json(response.model_dump_json()) == response
