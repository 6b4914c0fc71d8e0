"""How routing sees one call: its token estimate, and which answers it refuses."""

import pytest

from pipeline.errors import ContentBlocked, EmptyAnswer
from pipeline.providers.base import ToolOffer
from pipeline.resilience.calls import Call, judge
from schemas import GenerationParams, Message, Role, Tool, ToolCall, Usage
from schemas.stages import Generation

CALL = ToolCall(id="call_1", name="lookup", arguments={"query": "x" * 400})
TOOL = Tool(name="lookup", parameters={"type": "object", "description": "y" * 400})


def answer(text: str, *calls: ToolCall, finish_reason: str = "stop") -> Generation:
    return Generation(
        provider="gemini",
        provider_model="m",
        text=text,
        tool_calls=calls,
        finish_reason=finish_reason,
        usage=Usage(input_tokens=1, output_tokens=1, total_tokens=2),
        latency_ms=1.0,
    )


def test_an_answer_of_tool_calls_alone_is_an_answer():
    judge(answer("", CALL))
    judge(answer("calling lookup", CALL, finish_reason="tool_calls"))


def test_no_text_and_no_tool_calls_is_still_empty():
    with pytest.raises(EmptyAnswer):
        judge(answer("  "))


def test_a_withheld_answer_is_blocked_even_with_tool_calls():
    with pytest.raises(ContentBlocked):
        judge(answer("", CALL, finish_reason="safety"))


def test_the_estimate_counts_tool_call_arguments_and_tool_schemas():
    ask = Message(role=Role.USER, content="q")
    plain = Call((ask,), GenerationParams())
    with_calls = Call(
        (
            ask,
            Message(role=Role.ASSISTANT, tool_calls=(CALL,)),
            Message(role=Role.TOOL, tool_call_id="call_1", content="r"),
        ),
        GenerationParams(),
    )
    offering = Call((ask,), GenerationParams(), tools=ToolOffer((TOOL,)))

    # About 4 characters a token: each 400-character part adds about 100
    assert with_calls.estimated_tokens() - plain.estimated_tokens() >= 100
    assert offering.estimated_tokens() - plain.estimated_tokens() >= 100
