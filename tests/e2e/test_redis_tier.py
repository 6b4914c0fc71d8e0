"""Gateways that share Redis share answers, upstream calls and jobs."""

import asyncio
from pathlib import Path

import redis.asyncio as aioredis

from tests.support.emulator import Emulator
from tests.support.gateway import GatewayFactory
from tests.support.redis_servers import PrivateRedis
from tests.support.services import REDIS_URL


async def test_an_answer_cached_by_one_gateway_is_an_l2_hit_on_another(
    start_gateway: GatewayFactory, emulator: Emulator, redis_prefix: str
):
    # Given two gateways sharing Redis
    a = await start_gateway(redis_url=REDIS_URL, redis_prefix=redis_prefix)
    b = await start_gateway(redis_url=REDIS_URL, redis_prefix=redis_prefix)
    body = {"model": "flash", "prompt": "shared across processes"}

    # When A answers a request, then B gets it twice
    first = await a.generate(body)
    from_l2 = await b.generate(body)
    from_l1 = await b.generate(body)

    # Then B's first answer comes from Redis, its second from its own LRU
    assert first.header("X-Cache") == "MISS"
    assert from_l2.header("X-Cache") == "HIT"
    assert from_l2.body["cache"]["tier"] == "l2"
    assert from_l1.body["cache"]["tier"] == "l1"
    assert from_l2.body["text"] == first.body["text"]
    assert await emulator.calls() == 1


async def test_identical_requests_over_two_gateways_make_one_upstream_call(
    start_gateway: GatewayFactory, emulator: Emulator, redis_prefix: str
):
    a = await start_gateway(redis_url=REDIS_URL, redis_prefix=redis_prefix)
    b = await start_gateway(redis_url=REDIS_URL, redis_prefix=redis_prefix)
    body = {"model": "flash", "prompt": "once for all [[emulator:delay=400]]"}

    replies = await asyncio.gather(*(gw.generate(body) for gw in (a, b) * 20))

    assert [r.status for r in replies] == [200] * 40
    assert len({r.body["text"] for r in replies}) == 1
    assert await emulator.calls() == 1


async def test_a_job_submitted_to_one_gateway_is_read_and_long_polled_on_another(
    start_gateway: GatewayFactory, emulator: Emulator, redis_prefix: str
):
    # Given a gateway that runs jobs and one that only serves HTTP, sharing Redis
    worker = await start_gateway(
        redis_url=REDIS_URL, redis_prefix=redis_prefix, embedded_worker=True
    )
    reader = await start_gateway(redis_url=REDIS_URL, redis_prefix=redis_prefix)
    submitted = await worker.post_raw(
        "/v1/jobs", '{"model": "flash", "prompt": "a job for two [[emulator:delay=300]]"}'
    )
    assert submitted.status == 202, submitted.body
    job_id = submitted.body["id"]

    # When the other gateway long-polls it
    waited = await reader.get(f"/v1/jobs/{job_id}?wait=10")

    # Then it sees the job finish, with the worker's answer
    assert waited.status == 200
    assert waited.body["state"] == "succeeded"
    assert "a job for two" in waited.body["result"]["text"]
    ready = await reader.get("/readyz")
    assert ready.body["checks"]["redis"] is True


async def test_hits_keep_coming_from_l1_while_redis_is_down_and_l2_comes_back_by_itself(
    start_gateway: GatewayFactory, emulator: Emulator, tmp_path: Path
):
    # Given a gateway whose Redis is a private server of this test's own
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        gateway = await start_gateway(
            redis_url=server.url, redis_timeout_s=0.3, redis_retry_after_s=0.5
        )
        warm = {"model": "flash", "prompt": "cached before the outage"}
        assert (await gateway.generate(warm)).header("X-Cache") == "MISS"

        # When Redis dies
        server.kill()

        # Then cached answers still come from L1, and misses are still answered upstream
        hit = await gateway.generate(warm)
        assert hit.status == 200
        assert hit.body["cache"]["tier"] == "l1"
        during = await gateway.generate({"model": "flash", "prompt": "asked during the outage"})
        assert during.status == 200
        assert during.header("X-Cache") == "MISS"
        assert (await gateway.get("/readyz")).body["checks"]["redis"] is False

        # And when Redis is back on the same port, L2 is written again without a restart
        server.start()
        after = {"model": "flash", "prompt": "asked after the outage"}
        probe = aioredis.Redis.from_url(server.url)
        try:
            stored: list[bytes] = []
            for _ in range(50):  # the guard retries Redis after 0.5 s
                await gateway.generate({**after, "cache": {"no_cache": True}})
                stored = [k async for k in probe.scan_iter(match="*cache:*")]
                if stored:
                    break
                await asyncio.sleep(0.1)
            assert stored, "nothing was written to Redis after it came back"
        finally:
            await probe.aclose()
        assert (await gateway.get("/readyz")).body["checks"]["redis"] is True
    finally:
        server.kill()
