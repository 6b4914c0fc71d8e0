"""POST /v1/generate with "stream": true: deltas as Server-Sent Events, then the answer."""

import asyncio

import aiohttp
import pytest

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway
from tests.support.sse import Event, events, read_stream


def stream_body(prompt: str, model: str = "flash") -> dict[str, object]:
    return {"model": model, "prompt": prompt, "stream": True}


@pytest.mark.parametrize("model", ["flash", "gpt-4o-mini"])
async def test_a_stream_sends_deltas_then_the_whole_answer(
    gateway: Gateway, session: aiohttp.ClientSession, model: str
):
    stream = await read_stream(session, gateway.url + "/v1/generate", stream_body("hi", model))

    assert stream.status == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    assert stream.headers["X-Cache"] == "MISS"
    assert stream.headers["X-Request-Id"]
    names = [e.name for e in stream.events]
    assert names[-1] == "done"
    assert set(names[:-1]) == {"delta"}
    assert len(names) >= 3, "the emulator streams its answer in several chunks"
    done = stream.named("done")[0].data
    assert stream.text == done["text"]
    assert done["finish_reason"] == "stop"
    assert done["usage"]["output_tokens"] > 0
    assert (
        done["usage"]["total_tokens"]
        == done["usage"]["input_tokens"] + done["usage"]["output_tokens"]
    )
    assert done["cost"]["total_usd"] > 0
    assert done["cache"] == done["cache"] | {"hit": False, "stored": True}
    assert done["routing"]["attempts"] == 1


async def test_a_stream_and_a_plain_request_share_the_cache(
    gateway: Gateway, session: aiohttp.ClientSession, emulator: Emulator
):
    url = gateway.url + "/v1/generate"
    first = await read_stream(session, url, stream_body("share me"))
    assert await emulator.calls() == 1

    # The stored stream replays as a stream, and answers a plain request too
    again = await read_stream(session, url, stream_body("share me"))
    plain = await gateway.generate({"model": "flash", "prompt": "share me"})

    assert await emulator.calls() == 1
    assert again.headers["X-Cache"] == "HIT"
    assert "Age" in again.headers
    assert again.text == first.text
    assert again.named("done")[0].data["cache"]["hit"] is True
    assert plain.header("X-Cache") == "HIT"
    assert plain.body["text"] == first.text


async def test_a_plain_answer_replays_as_a_stream(
    gateway: Gateway, session: aiohttp.ClientSession, emulator: Emulator
):
    long_prompt = " ".join(f"word{i}" for i in range(60))
    plain = await gateway.generate({"model": "flash", "prompt": long_prompt})
    replay = await read_stream(session, gateway.url + "/v1/generate", stream_body(long_prompt))

    assert await emulator.calls() == 1
    assert replay.headers["X-Cache"] == "HIT"
    assert replay.text == plain.body["text"]
    assert len(replay.named("delta")) > 1, "a long cached answer replays in several deltas"


async def test_fifty_identical_streams_make_one_upstream_call(
    gateway: Gateway, session: aiohttp.ClientSession, emulator: Emulator
):
    body = stream_body("together [[emulator:delay=300]]")
    streams = await asyncio.gather(
        *(read_stream(session, gateway.url + "/v1/generate", body) for _ in range(50))
    )

    assert await emulator.calls() == 1
    assert [s.status for s in streams] == [200] * 50
    assert len({s.text for s in streams}) == 1
    coalesced = [s for s in streams if s.named("done")[0].data["cache"]["coalesced"]]
    assert len(coalesced) == 49
    assert gateway.send.sync_path.in_flight == 0


async def test_an_error_before_the_first_delta_is_a_plain_http_error(
    gateway: Gateway, session: aiohttp.ClientSession, emulator: Emulator
):
    url = gateway.url + "/v1/generate"
    unknown = await read_stream(session, url, stream_body("hi", model="no-such-model"))
    refused = await read_stream(session, url, stream_body("no [[emulator:status=400]]"))

    assert unknown.status == 404
    assert unknown.body["error"]["type"] == "unknown_model"
    assert refused.status == 400 or refused.status == 502
    assert "error" in refused.body
    assert await emulator.calls() == 1


async def test_a_caller_that_hangs_up_alone_cancels_the_call_and_nothing_is_stored(
    gateway: Gateway, session: aiohttp.ClientSession, emulator: Emulator
):
    url = gateway.url + "/v1/generate"
    body = stream_body("leave early " + "word " * 30 + "[[emulator:chunks=20,chunk_delay=50]]")
    async with session.post(url, json=body) as resp:
        async for event in events(resp):
            assert event.name == "delta"
            break
    for _ in range(100):
        if gateway.send.sync_path.in_flight == 0:
            break
        await asyncio.sleep(0.02)
    assert gateway.send.sync_path.in_flight == 0, "the upstream call stopped with its caller"

    # Nothing was stored: the same request calls upstream again
    again = await read_stream(session, url, body)
    assert again.headers["X-Cache"] == "MISS"
    assert await emulator.calls() == 2


async def test_followers_finish_when_the_leader_hangs_up_and_a_late_one_gets_it_all(
    gateway: Gateway, session: aiohttp.ClientSession, emulator: Emulator
):
    url = gateway.url + "/v1/generate"
    body = stream_body(
        "keep going on and on with many words in this answer [[emulator:chunks=10,chunk_delay=40]]"
    )
    leader_saw_two, follower_joined = asyncio.Event(), asyncio.Event()
    follower_events: list[Event] = []

    async def leader() -> None:
        async with session.post(url, json=body) as resp:
            seen = 0
            async for _event in events(resp):
                seen += 1
                if seen == 2:
                    leader_saw_two.set()
                    await follower_joined.wait()
                    return  # hangs up in the middle of the stream

    async def follower() -> None:
        async with session.post(url, json=body) as resp:
            async for event in events(resp):
                follower_events.append(event)
                follower_joined.set()

    leading = asyncio.create_task(leader())
    await leader_saw_two.wait()
    # A follower that arrives late, after two deltas went out, then the leader leaves
    await asyncio.wait_for(asyncio.gather(leading, follower()), timeout=30)

    assert await emulator.calls() == 1
    deltas = [e for e in follower_events if e.name == "delta"]
    done = follower_events[-1]
    assert done.name == "done"
    assert len(deltas) == 10, "the late follower got the deltas so far, then the rest"
    assert "".join(e.data["text"] for e in deltas) == done.data["text"]
    assert done.data["cache"]["coalesced"] is True
    cached = await gateway.generate({"model": "flash", "prompt": body["prompt"]})
    assert cached.header("X-Cache") == "HIT", "the finished stream was stored"


@pytest.mark.parametrize("fault", ["cut=2", "stream_error=2"])
async def test_a_stream_that_breaks_ends_with_an_error_event_and_is_not_stored(
    gateway: Gateway, session: aiohttp.ClientSession, emulator: Emulator, fault: str
):
    url = gateway.url + "/v1/generate"
    body = stream_body(f"break this answer into five pieces [[emulator:chunks=5,{fault}]]")
    broken = await read_stream(session, url, body)

    assert broken.status == 200
    assert [e.name for e in broken.events] == ["delta", "delta", "error"]
    error = broken.named("error")[0].data["error"]
    assert error["type"] == "stream_interrupted"
    assert error["retryable"] is True

    again = await read_stream(session, url, body)
    assert again.headers["X-Cache"] == "MISS", "a broken stream is never stored"
    assert await emulator.calls() == 2


async def test_a_structured_stream_sends_the_checked_answer(
    gateway: Gateway, session: aiohttp.ClientSession
):
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }
    body = {**stream_body("json please"), "response_schema": schema}
    stream = await read_stream(session, gateway.url + "/v1/generate", body)

    done = stream.named("done")[0].data
    assert stream.text == done["text"]
    assert isinstance(done["json"]["answer"], str)
