"""LangChain's ChatGoogleGenerativeAI, unchanged, through promptbus's Gemini API."""

from pydantic import BaseModel

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway
from tests.support.genai_clients import gemini_chat_on


class Answer(BaseModel):
    answer: str


async def test_ainvoke_and_astream_through_promptbus(gateway: Gateway, emulator: Emulator):
    async with gemini_chat_on(gateway.url) as llm:
        reply = await llm.ainvoke([("system", "be brief"), ("human", "hello langchain")])
        chunks = [c async for c in llm.astream([("system", "be brief"), ("human", "stream it")])]
        again = await llm.ainvoke([("system", "be brief"), ("human", "stream it")])

    assert reply.text.startswith("[gemini-2.5-flash] hello langchain #")
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["total_tokens"] == (
        reply.usage_metadata["input_tokens"] + reply.usage_metadata["output_tokens"]
    )
    assert reply.response_metadata["finish_reason"] == "STOP"
    assert reply.response_metadata["model_name"] == "gemini-2.5-flash"
    streamed = "".join(c.text for c in chunks)
    assert streamed.startswith("[gemini-2.5-flash] stream it #")
    # LangChain subtracts cumulative usage: the chunks sum to the whole answer's
    total = sum((c.usage_metadata or {}).get("total_tokens", 0) for c in chunks)
    assert again.text == streamed, "the finished stream was stored and served"
    assert total == again.usage_metadata["total_tokens"]
    assert await emulator.calls() == 2


async def test_structured_output_through_promptbus(gateway: Gateway):
    async with gemini_chat_on(gateway.url) as llm:
        structured = llm.with_structured_output(Answer)
        result = await structured.ainvoke("answer me in JSON")

    assert isinstance(result, Answer)
    assert result.answer


async def test_a_blocked_prompt_is_langchain_s_empty_message_with_its_feedback(gateway: Gateway):
    async with gemini_chat_on(gateway.url) as llm:
        reply = await llm.ainvoke("x [[emulator:block=prompt]]")

    assert reply.text == ""
    assert reply.response_metadata["prompt_feedback"]["block_reason"] == "SAFETY"
