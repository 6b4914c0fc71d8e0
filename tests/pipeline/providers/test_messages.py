"""Our conversation as LangChain messages, and a reply's tool calls read back as ours."""

import uuid

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from pipeline.errors import InvalidModelOutput
from pipeline.providers.messages import call_id, to_langchain, tool_calls_of
from schemas import Message, Role, ToolCall

OSLO = ToolCall(id="call_a", name="get_weather", arguments={"city": "Oslo"})
NOW = ToolCall(id="call_b", name="get_time", arguments={})


def test_every_role_becomes_its_langchain_message():
    # Given a conversation with a system text, a question, two tool calls and their results
    conversation = (
        Message(role=Role.SYSTEM, content="be brief"),
        Message(role=Role.USER, content="weather and time?"),
        Message(role=Role.ASSISTANT, content="", tool_calls=(OSLO, NOW)),
        Message(role=Role.TOOL, tool_call_id="call_b", content="12:00"),
        Message(role=Role.TOOL, tool_call_id="call_a", content='{"sky": "clear"}'),
        Message(role=Role.ASSISTANT, content="Clear at noon."),
        Message(role=Role.USER, content="thanks"),
    )

    # When it is translated
    messages = to_langchain(conversation)

    # Then each message has its LangChain type, the calls as LangChain tool calls
    assert [type(m) for m in messages] == [
        SystemMessage,
        HumanMessage,
        AIMessage,
        ToolMessage,
        ToolMessage,
        AIMessage,
        HumanMessage,
    ]
    assistant = messages[2]
    assert isinstance(assistant, AIMessage)
    assert assistant.content == ""
    assert [(c["id"], c["name"], c["args"]) for c in assistant.tool_calls] == [
        ("call_a", "get_weather", {"city": "Oslo"}),
        ("call_b", "get_time", {}),
    ]
    # And each result names the call it answers, and that call's tool, its content verbatim
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert [(m.tool_call_id, m.name, m.content) for m in results] == [
        ("call_b", "get_time", "12:00"),
        ("call_a", "get_weather", '{"sky": "clear"}'),
    ]
    assert messages[5].content == "Clear at noon."
    assert isinstance(messages[5], AIMessage)
    assert messages[5].tool_calls == []


def test_a_reply_s_tool_calls_come_back_as_ours():
    reply = AIMessage(
        content="",
        tool_calls=[
            {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_x"},
            {"name": "get_time", "args": {}, "id": "call_y"},
        ],
    )

    calls = tool_calls_of(reply, turn=1, invented_ids=False)

    assert calls == (
        ToolCall(id="call_x", name="get_weather", arguments={"city": "Oslo"}),
        ToolCall(id="call_y", name="get_time", arguments={}),
    )


def test_a_reply_without_tool_calls_has_none():
    assert tool_calls_of(AIMessage(content="hello"), turn=1, invented_ids=True) == ()


def test_translating_there_and_back_keeps_the_calls():
    (assistant,) = to_langchain((Message(role=Role.ASSISTANT, tool_calls=(OSLO, NOW)),))
    assert isinstance(assistant, AIMessage)

    assert tool_calls_of(assistant, turn=2, invented_ids=False) == (OSLO, NOW)


def test_missing_ids_are_made_from_the_position_and_name():
    reply = AIMessage(
        content="",
        tool_calls=[
            {"name": "get_weather", "args": {"city": "Oslo"}, "id": None},
            {"name": "get_weather", "args": {"city": "Bergen"}, "id": ""},
        ],
    )

    first = tool_calls_of(reply, turn=3, invented_ids=False)
    again = tool_calls_of(reply, turn=3, invented_ids=False)
    later = tool_calls_of(reply, turn=5, invented_ids=False)

    assert [c.id for c in first] == [call_id(3, 0, "get_weather"), call_id(3, 1, "get_weather")]
    assert first == again  # the same answer names its calls the same
    # A later turn's calls never take an earlier turn's ids (a request's ids must be distinct)
    assert {c.id for c in first}.isdisjoint(c.id for c in later)


def test_ids_a_client_invented_are_replaced_and_the_provider_s_are_kept():
    # langchain-google-genai makes up a UUID4 where Gemini sent no id
    made_up = str(uuid.uuid4())
    reply = AIMessage(
        content="",
        tool_calls=[
            {"name": "get_weather", "args": {}, "id": made_up},
            {"name": "get_time", "args": {}, "id": "fc_provider_1"},
        ],
    )

    invented = tool_calls_of(reply, turn=1, invented_ids=True)
    trusted = tool_calls_of(reply, turn=1, invented_ids=False)

    assert [c.id for c in invented] == [call_id(1, 0, "get_weather"), "fc_provider_1"]
    assert [c.id for c in trusted] == [made_up, "fc_provider_1"]


def test_arguments_that_are_not_json_are_invalid_output():
    reply = AIMessage(
        content="",
        invalid_tool_calls=[
            {"name": "get_weather", "args": "{city: Oslo", "id": "c", "error": "bad JSON"}
        ],
    )

    with pytest.raises(InvalidModelOutput) as caught:
        tool_calls_of(reply, turn=1, invented_ids=False)

    assert "get_weather" in caught.value.message
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("name", "args"), [("get weather", {}), ("x" * 65, {}), ("get_weather", ["Oslo"])]
)
def test_a_call_promptbus_cannot_carry_is_invalid_output(name: str, args: object):
    reply = AIMessage(content="")
    # Set past validation, as a client's parser can leave it (a list where an object belongs)
    reply.tool_calls = [{"name": name, "args": args, "id": "c"}]

    with pytest.raises(InvalidModelOutput) as caught:
        tool_calls_of(reply, turn=1, invented_ids=False)

    assert "is not one promptbus can carry" in caught.value.message
