"""Tool calls end to end: POST /v1/generate and /v1/jobs on both providers, with the cache."""

from typing import Any

import pytest

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway
from tests.support.job_env import job_env
from tests.support.sse import read_stream
from tests.support.unique import new_id

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
MODELS = ["flash", "gpt-4o-mini"]
# finish_reason is each provider's own: OpenAI says "tool_calls", Gemini "stop".
TOOL_FINISH = {"flash": "stop", "gpt-4o-mini": "tool_calls"}


def asking(model: str, prompt: str = "weather in Oslo? [[emulator:tool_calls=1]]", **extra: Any):
    return {"model": model, "messages": [{"role": "user", "content": prompt}], **extra}


def with_tools(model: str, **extra: Any) -> dict[str, Any]:
    return asking(model, tools=[WEATHER], **extra)


@pytest.mark.parametrize("model", MODELS)
async def test_a_tool_call_round_trip(gateway: Gateway, emulator: Emulator, model: str):
    # Given a request offering a tool, that the emulator answers with a call
    first = await gateway.generate(with_tools(model))

    # Then the answer is the call: its tool's name and dict arguments, and no text
    assert first.status == 200, first.body
    (call,) = first.body["tool_calls"]
    assert call["name"] == "get_weather"
    assert isinstance(call["arguments"], dict)
    assert isinstance(call["arguments"]["city"], str)
    assert call["id"]
    assert first.body["text"] == ""
    assert first.body["finish_reason"] == TOOL_FINISH[model]
    assert first.body["usage"]["output_tokens"] > 0

    # When the call and the tool's result go back
    follow_up = with_tools(model)
    follow_up["messages"] += [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21 C"},
    ]
    second = await gateway.generate(follow_up)

    # Then the model answers with text that holds the result
    assert second.status == 200, second.body
    assert "sunny, 21 C" in second.body["text"]
    assert second.body["tool_calls"] == []
    assert second.body["finish_reason"] == "stop"
    assert await emulator.calls() == 2


@pytest.mark.parametrize("model", MODELS)
async def test_a_cached_answer_keeps_its_tool_calls(
    gateway: Gateway, emulator: Emulator, model: str
):
    first = await gateway.generate(with_tools(model))
    second = await gateway.generate(with_tools(model))

    assert first.header("X-Cache") == "MISS"
    assert second.header("X-Cache") == "HIT"
    assert second.body["tool_calls"] == first.body["tool_calls"]
    assert len(second.body["tool_calls"]) == 1
    assert await emulator.calls() == 1


async def test_tools_and_their_controls_change_the_key_and_the_user_does_not(
    gateway: Gateway, emulator: Emulator
):
    # The same question each time (the emulator refuses its tool_calls directive without tools)
    question = "weather in Oslo?"
    variants = [
        asking("flash", question),
        asking("flash", question, tools=[WEATHER]),
        asking("flash", question, tools=[WEATHER], tool_choice="get_weather"),
        asking("flash", question, tools=[WEATHER], tool_choice="auto"),
        asking("flash", question, tools=[WEATHER], parallel_tool_calls=False),
        asking("flash", question, tools=[{**WEATHER, "description": "Weather"}]),
        asking("flash", question, tools=[WEATHER], params={"seed": 3}),
    ]
    keys = set()
    for variant in variants:
        reply = await gateway.generate(variant)
        assert reply.status == 200, reply.body
        assert reply.header("X-Cache") == "MISS", variant
        keys.add(reply.body["cache"]["key"])

    # The end user is passed on, but two users asking the same share the answer
    shared = await gateway.generate(asking("flash", question, tools=[WEATHER], user="end-user-42"))

    assert len(keys) == len(variants)
    assert shared.header("X-Cache") == "HIT"
    assert await emulator.calls() == len(variants)


ASK = {"role": "user", "content": "weather?"}
CALL = {"id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (asking("flash", tool_choice="auto"), "tool_choice", "goes with 'tools'"),
        (with_tools("flash", tool_choice="get_time"), "tool_choice", "names none of the tools"),
        (asking("flash", tools=[WEATHER, WEATHER]), "tools", "distinct"),
        (
            with_tools("flash", response_schema={"type": "object"}),
            "tools",
            "cannot be combined with 'response_schema'",
        ),
        (
            asking("flash", tools=[{**WEATHER, "name": "get weather"}]),
            "tools.0.name",
            "pattern",
        ),
        (
            asking("flash", tools=[{"name": "f", "parameters": {"type": "object", "required": 3}}]),
            "tools.0.parameters",
            "not a valid JSON Schema",
        ),
        (
            {
                "model": "flash",
                "messages": [ASK, {"role": "tool", "tool_call_id": "call_1", "content": "r"}],
            },
            "messages",
            "answers no tool call",
        ),
        (
            {
                "model": "flash",
                "messages": [ASK, {"role": "assistant", "tool_calls": [CALL]}],
            },
            None,
            "the last message must have role 'user' or 'tool'",
        ),
        (
            {
                "model": "flash",
                "messages": [ASK, {"role": "user", "content": "x", "tool_calls": [CALL]}],
            },
            "messages.1",
            "only an assistant message",
        ),
        ({"model": "flash", "prompt": "hi", "user": "u" * 257}, "user", "256"),
    ],
)
async def test_bad_tool_requests_are_422_naming_the_field(
    gateway: Gateway, emulator: Emulator, body: dict[str, Any], field: str | None, says: str
):
    reply = await gateway.generate(body)

    assert reply.status == 422, reply.body
    assert (reply.header("Content-Type") or "").startswith("application/json")
    error = reply.body["error"]
    assert error["type"] == "validation_error"
    assert error["retryable"] is False
    assert error.get("field") == field
    assert says in error["message"]
    assert await emulator.calls() == 0


@pytest.mark.parametrize("model", MODELS)
async def test_a_streamed_tool_call_comes_with_the_whole_answer(
    gateway: Gateway, emulator: Emulator, model: str
):
    stream = await read_stream(
        gateway.session, gateway.url + "/v1/generate", with_tools(model, stream=True)
    )

    assert stream.status == 200
    assert stream.text == ""
    (done,) = stream.named("done")
    assert [c["name"] for c in done.data["tool_calls"]] == ["get_weather"]
    # Stored whole, it answers a plain request too
    plain = await gateway.generate(with_tools(model))
    assert plain.header("X-Cache") == "HIT"
    assert plain.body["tool_calls"] == done.data["tool_calls"]


@pytest.mark.parametrize("model", MODELS)
async def test_a_job_with_tools_completes_with_its_tool_calls(model: str):
    async with job_env("memory") as env:
        prompt = f"{new_id('job-tools')} weather? [[emulator:tool_calls=2]]"
        accepted = await env.submit(asking(model, prompt, tools=[WEATHER, {"name": "get_time"}]))
        assert accepted.status == 202, accepted.body

        done = await env.wait_job(accepted.body["id"], 10)

        assert done.body["state"] == "succeeded", done.body
        result = done.body["result"]
        assert [c["name"] for c in result["tool_calls"]] == ["get_weather", "get_time"]
        assert isinstance(result["tool_calls"][0]["arguments"]["city"], str)
        assert result["finish_reason"] == TOOL_FINISH[model]
        # And the job stored what the sync path then finds
        again = await env.gateway.generate(
            asking(model, prompt, tools=[WEATHER, {"name": "get_time"}])
        )
        assert again.header("X-Cache") == "HIT"
        assert again.body["tool_calls"] == result["tool_calls"]
