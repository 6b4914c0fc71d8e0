"""Identical requests in flight share one upstream call."""

import asyncio

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory


async def test_hundred_identical_requests_make_one_upstream_call(
    gateway: Gateway, emulator: Emulator
):
    # Given a slow answer, when 100 callers ask the same thing at once
    body = {"model": "flash", "prompt": "together [[emulator:delay=300]]"}
    replies = await asyncio.gather(*(gateway.generate(body) for _ in range(100)))

    # Then the emulator answered once and every caller got the same answer
    assert [r.status for r in replies] == [200] * 100
    assert await emulator.calls() == 1
    assert len({r.body["text"] for r in replies}) == 1
    assert len({r.body["id"] for r in replies}) == 1
    coalesced = [r for r in replies if r.body["cache"]["coalesced"]]
    hits = [r for r in replies if r.body["cache"]["hit"]]
    assert len(coalesced) + len(hits) == 99
    assert gateway.send.sync_path.in_flight == 0


async def test_distinct_requests_are_not_coalesced(gateway: Gateway, emulator: Emulator):
    bodies = [{"model": "flash", "prompt": f"alone {i} [[emulator:delay=100]]"} for i in range(5)]
    replies = await asyncio.gather(*(gateway.generate(b) for b in bodies))

    assert [r.status for r in replies] == [200] * 5
    assert len({r.body["text"] for r in replies}) == 5
    assert await emulator.calls() == 5


async def test_an_error_reaches_every_coalesced_caller_and_is_not_cached(
    start_gateway: GatewayFactory, emulator: Emulator
):
    # Two attempts per request (one retry), and a breaker that stays closed throughout
    gateway = await start_gateway(retry_max_attempts=2, retry_base_s=0.01, breaker_failures=10)
    body = {
        "model": "flash",
        "prompt": "fail together [[emulator:delay=200]] [[emulator:status=500]]",
    }
    replies = await asyncio.gather(*(gateway.generate(body) for _ in range(10)))

    assert {r.status for r in replies} == {503}
    assert all(r.body["error"]["retryable"] for r in replies)
    assert all(r.body["error"]["attempts"] == 2 for r in replies)
    assert await emulator.calls() == 2, "ten coalesced callers share one request's attempts"
    assert (await gateway.generate(body)).status == 503
    assert await emulator.calls() == 4
