"""Retries, fallbacks, circuit breakers and rate limits on the sync path, over real HTTP.

The emulator's fault rules fail chosen models in chosen ways; the gateway's answers, its
error bodies and the emulator's call counts show what promptbus did about it.
"""

import asyncio
from pathlib import Path

import aiohttp

from tests.support.emulator import Emulator
from tests.support.gateway import GatewayFactory
from tests.support.resilience import BACKUP, FAST, PRIMARY, calls_by_model, fault, set_faults, timed
from tests.support.unique import new_id


async def test_a_429_with_a_retry_delay_is_retried_once_after_that_delay(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir, **FAST)
    await set_faults(emulator, fault("test-primary", status=429, retry_after_s=1.0, times=1))

    reply, took_s = await timed(gateway, {"model": "test-primary", "prompt": new_id("429")})

    assert reply.status == 200, reply.body
    assert reply.body["routing"]["attempts"] == 2
    assert reply.body["routing"]["deployment"] == PRIMARY
    assert took_s >= 1.0, "the server's retry delay was not honoured"
    assert (await calls_by_model(emulator))["test-primary"] == 2


async def test_two_503s_then_success_on_the_third_attempt(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir, **FAST)
    await set_faults(emulator, fault("test-primary", status=503, times=2))

    reply, _ = await timed(gateway, {"model": "test-primary", "prompt": new_id("503x2")})

    assert reply.status == 200, reply.body
    assert reply.body["routing"]["attempts"] == 3
    assert (await calls_by_model(emulator))["test-primary"] == 3


async def test_attempts_never_exceed_the_budget(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    settings = {**FAST, "retry_max_attempts": 3, "breaker_failures": 10}
    gateway = await start_gateway(config_dir=config_dir, **settings)
    await set_faults(emulator, fault("test-primary", status=503))

    reply, _ = await timed(gateway, {"model": "test-primary", "prompt": new_id("budget")})

    assert reply.status == 503, reply.body
    error = reply.body["error"]
    assert error["type"] == "upstream_unavailable"
    assert error["retryable"] is True
    assert error["attempts"] == 3
    assert (await calls_by_model(emulator))["test-primary"] == 3


async def test_a_400_is_not_retried(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir, **FAST)
    await set_faults(emulator, fault("test-primary", status=400))

    reply, _ = await timed(gateway, {"model": "primary-then-backup", "prompt": new_id("400")})

    assert reply.status == 502, reply.body
    assert reply.body["error"]["type"] == "upstream_rejected"
    assert reply.body["error"]["retryable"] is False
    assert reply.body["error"]["attempts"] == 1
    counts = await calls_by_model(emulator)
    assert counts == {"test-primary": 1}, "a rejected request must not go to the backup either"


async def test_a_safety_block_is_not_retried_without_fallback_configured(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir, **FAST)
    await set_faults(emulator, fault("test-primary", "safety"))

    reply, _ = await timed(gateway, {"model": "primary-then-backup", "prompt": new_id("blk")})

    assert reply.status == 422, reply.body
    assert reply.body["error"]["type"] == "content_blocked"
    assert reply.body["error"]["finish_reason"] == "safety"
    assert await calls_by_model(emulator) == {"test-primary": 1}


async def test_a_safety_block_falls_back_where_the_route_says_so(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir, **FAST)
    await set_faults(emulator, fault("test-primary", "safety"))

    reply, _ = await timed(gateway, {"model": "blocked-then-openai", "prompt": new_id("blk")})

    assert reply.status == 200, reply.body
    routing = reply.body["routing"]
    assert routing["deployment"] == "openai/test-openai"
    assert routing["fallbacks"] == [PRIMARY]
    assert routing["attempts"] == 2
    assert reply.body["provider"] == "openai"
    assert "[test-openai]" in reply.body["text"]


async def test_a_down_primary_falls_back_opens_its_circuit_then_half_opens(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir, **FAST)
    await set_faults(emulator, fault("test-primary", status=503))
    route = {"model": "primary-then-backup"}

    # While the primary fails, the backup answers and says so
    for _ in range(3):
        reply, _ = await timed(gateway, {**route, "prompt": new_id("down")})
        assert reply.status == 200, reply.body
        assert reply.body["routing"]["deployment"] == BACKUP
        assert reply.body["routing"]["fallbacks"] == [PRIMARY]
    assert (await calls_by_model(emulator))["test-primary"] == 3

    # Three failures open the primary's circuit: it is skipped, not called
    reply, _ = await timed(gateway, {**route, "prompt": new_id("open")})
    assert reply.status == 200, reply.body
    assert reply.body["routing"]["deployment"] == BACKUP
    assert reply.body["routing"]["fallbacks"] == []
    assert (await calls_by_model(emulator))["test-primary"] == 3
    assert gateway.services.ctx.router.breaker.state(PRIMARY) == "open"

    # After the cooldown one probe goes to the primary; now healthy, it answers and closes
    await set_faults(emulator)
    await asyncio.sleep(FAST["breaker_cooldown_s"] + 0.1)
    reply, _ = await timed(gateway, {**route, "prompt": new_id("probe")})
    assert reply.status == 200, reply.body
    assert reply.body["routing"]["deployment"] == PRIMARY
    assert (await calls_by_model(emulator))["test-primary"] == 4
    assert gateway.services.ctx.router.breaker.state(PRIMARY) == "closed"


async def test_over_the_rate_limit_a_sync_caller_gets_429_with_retry_after(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    # test-limited allows 3 requests per 2 s window, and callers wait for no room
    gateway = await start_gateway(config_dir=config_dir, **FAST)

    replies = [
        await gateway.generate({"model": "limited", "prompt": new_id("rpm")}) for _ in range(4)
    ]

    assert [r.status for r in replies] == [200, 200, 200, 429], [r.body for r in replies]
    refused = replies[-1]
    assert refused.body["error"]["type"] == "rate_limited"
    assert refused.body["error"]["retryable"] is True
    retry_after = int(refused.header("Retry-After") or 0)
    assert 1 <= retry_after <= 2
    assert (await calls_by_model(emulator))["test-limited"] == 3

    # Once the window has moved on, there is room again
    await asyncio.sleep(retry_after)
    again = await gateway.generate({"model": "limited", "prompt": new_id("rpm")})
    assert again.status == 200, again.body


async def test_a_sync_caller_within_the_wait_bound_waits_for_room(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir, **{**FAST, "rate_limit_wait_s": 3.0})

    replies = [
        await gateway.generate({"model": "limited", "prompt": new_id("rpm")}) for _ in range(4)
    ]

    assert [r.status for r in replies] == [200] * 4, [r.body for r in replies]
    assert (await calls_by_model(emulator))["test-limited"] == 4


async def test_a_caller_that_hangs_up_cancels_its_upstream_call(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir, **FAST)
    body = {"model": "test-primary", "prompt": f"{new_id('gone')} [[emulator:delay=3000]]"}

    # When the caller gives up after 0.3 s of a 3 s answer
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as impatient:
        try:
            async with impatient.post(f"{gateway.url}/v1/generate", json=body):
                raise AssertionError("the answer came before the caller hung up")
        except TimeoutError:
            pass

    # Then the gateway stops waiting on the upstream call long before it would have ended
    sync_path = gateway.send.sync_path
    for _ in range(100):
        if sync_path.in_flight == 0:
            break
        await asyncio.sleep(0.02)
    assert sync_path.in_flight == 0, "the upstream call outlived its only caller"


async def test_an_open_circuit_answers_503_at_once_with_retry_after(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir, **{**FAST, "breaker_cooldown_s": 5.0})
    await set_faults(emulator, fault("test-primary", status=503))

    # Three failures open the circuit within the first request's retries
    first, _ = await timed(gateway, {"model": "test-primary", "prompt": new_id("trip")})
    assert first.status == 503, first.body
    assert (await calls_by_model(emulator))["test-primary"] == 3

    # Then a caller is turned away without an upstream call, told when to come back
    second, took_s = await timed(gateway, {"model": "test-primary", "prompt": new_id("shut")})
    assert second.status == 503, second.body
    assert second.body["error"]["retryable"] is True
    assert "cooling down" in second.body["error"]["message"]
    assert 1 <= int(second.header("Retry-After") or 0) <= 5
    assert (await calls_by_model(emulator))["test-primary"] == 3
    assert took_s < FAST["breaker_cooldown_s"] / 2, "the caller was held for the cooldown"


async def test_a_connection_reset_is_retried(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir, **FAST)
    await set_faults(emulator, fault("test-primary", "reset", times=1))

    reply, _ = await timed(gateway, {"model": "test-primary", "prompt": new_id("reset")})

    assert reply.status == 200, reply.body
    assert reply.body["routing"]["attempts"] == 2
    assert (await calls_by_model(emulator))["test-primary"] == 2


async def test_a_slow_answer_times_out_and_is_retried(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    gateway = await start_gateway(config_dir=config_dir, provider_timeout_s=0.5, **FAST)
    await set_faults(emulator, fault("test-primary", "slow", delay_ms=3000, times=1))

    reply, _ = await timed(gateway, {"model": "test-primary", "prompt": new_id("slow")})

    assert reply.status == 200, reply.body
    assert reply.body["routing"]["attempts"] == 2
