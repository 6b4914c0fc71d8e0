"""Metrics of the resilience layer and of spend by tenant: breakers, rate limits, the cap."""

import asyncio
import json
import time
from pathlib import Path

from tests.support.bus_tap import BusTap
from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.job_env import job_env
from tests.support.metrics import Scrape, scrape
from tests.support.resilience import FAST, PRIMARY, fault, set_faults
from tests.support.unique import new_id

BREAKER = "promptbus_breaker_state"
TRANSITIONS = "promptbus_breaker_transitions_total"


async def metrics(gateway: Gateway) -> Scrape:
    return await scrape(gateway.session, gateway.url + "/metrics")


async def test_a_circuit_opening_and_closing_again_shows_on_the_breaker_gauge(
    start_gateway: GatewayFactory, emulator: Emulator, config_dir: Path
) -> None:
    # Given a deployment failing every call, with a breaker that opens after three failures
    gateway = await start_gateway(config_dir=config_dir, **FAST)
    await set_faults(emulator, fault("test-primary", status=503))

    # When a request's retries open its circuit
    first = await gateway.generate({"model": "test-primary", "prompt": new_id("trip")})
    assert first.status == 503, first.body
    opened = await metrics(gateway)

    # Then the gauge says open (2), and one transition to open was counted
    assert opened.value(BREAKER, deployment=PRIMARY) == 2
    assert opened.value(TRANSITIONS, deployment=PRIMARY, state="open") == 1
    assert opened.value("promptbus_upstream_calls_total", deployment=PRIMARY) == 3

    # When the deployment recovers and a request after the cooldown probes it
    await set_faults(emulator)
    deadline = time.monotonic() + 10
    while (
        reply := await gateway.generate({"model": "test-primary", "prompt": new_id("p")})
    ).status != 200:
        assert time.monotonic() < deadline, reply.body
        await asyncio.sleep(0.1)
    closed = await metrics(gateway)

    # Then the circuit went half open, then closed (0)
    assert closed.value(BREAKER, deployment=PRIMARY) == 0
    assert closed.value(TRANSITIONS, deployment=PRIMARY, state="half_open") == 1
    assert closed.value(TRANSITIONS, deployment=PRIMARY, state="closed") == 1


async def test_waiting_for_room_under_a_rate_limit_is_counted(
    start_gateway: GatewayFactory, config_dir: Path
) -> None:
    # Given a model allowing 3 requests per 2 s, and sync callers that may wait 3 s for room
    gateway = await start_gateway(config_dir=config_dir, **{**FAST, "rate_limit_wait_s": 3.0})

    # When a fourth request comes within the window
    replies = [
        await gateway.generate({"model": "limited", "prompt": new_id("rpm")}) for _ in range(4)
    ]
    assert [r.status for r in replies] == [200] * 4
    after = await metrics(gateway)

    # Then the deployment was passed over for its limit, and the wait for room was observed
    assert after.value("promptbus_rate_limited_total", deployment="gemini/test-limited") >= 1
    assert after.value("promptbus_rate_limit_wait_seconds_count", path="sync") >= 1
    assert after.value("promptbus_rate_limit_wait_seconds_sum", path="sync") > 0


async def test_spend_by_tenant_names_the_first_tenants_up_to_the_cap_and_pools_the_rest() -> None:
    async with job_env("memory", metrics_max_tenants=2) as env:
        # Given a cap of two tenants; when four tenants' request events each run a job
        tenants = ["acme", "globex", "initech", "umbrella"]
        async with BusTap.completions(env.bus) as tap:
            done = []
            for tenant in tenants:
                job_id = new_id(f"t-{tenant}")
                event = {
                    "schema": "promptbus.request/v1",
                    "job_id": job_id,
                    "tenant": tenant,
                    "request": {"model": "flash", "prompt": new_id(tenant)},
                }
                await asyncio.to_thread(
                    env.bus.publish_raw, json.dumps(event).encode(), test_id=job_id
                )
                # One at a time, so which tenants come first is known
                done.append(await tap.wait_for(job_id=job_id, timeout_s=20))
        after = await scrape(env.session, env.gateway.url + "/metrics")

    # Then the first two keep their names and the other two count as "other"
    assert {d.body["state"] for d in done} == {"succeeded"}
    output = [d.body["usage"]["output_tokens"] for d in done]
    tokens = "promptbus_tokens_total"
    assert after.label_values(tokens, "tenant") == {"acme", "globex", "other"}
    assert after.value(tokens, tenant="acme", token_type="output") == output[0]
    assert after.value(tokens, tenant="globex", token_type="output") == output[1]
    assert after.value(tokens, tenant="other", token_type="output") == output[2] + output[3]
    costs = sum(d.body["cost"]["total_usd"] for d in done)
    assert abs(after.value("promptbus_cost_usd_total") - costs) < 1e-12
