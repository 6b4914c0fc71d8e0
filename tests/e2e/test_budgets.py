"""Budgets hold across gateways sharing Redis: over budget is a 429, a cache hit still served."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import openai
import pytest

from pipeline.bus.topology import BUDGET_THRESHOLD_KEY
from schemas import DEFAULT_TENANT
from tests.support.bus_tap import BusTap, Delivery
from tests.support.gateway import Gateway, serving
from tests.support.job_env import JobEnv, job_env
from tests.support.redis_servers import redis_run
from tests.support.services import REDIS_URL
from tests.support.tenants import set_budget
from tests.support.unique import new_id
from tests.support.webhook_flows import register
from tests.support.webhook_receivers import receiving

RULES_TTL_S = 0.2


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[tuple[JobEnv, Gateway]]:
    """Two gateways on one bus, one Redis prefix and one database: two processes' view."""
    async with redis_run() as run:
        shared = {
            "redis_url": REDIS_URL,
            "redis_prefix": run.prefix,
            "database_url": f"sqlite:///{tmp_path / 'shared.db'}",
            "budget_rules_ttl_s": RULES_TTL_S,
        }
        async with job_env("redis", **shared) as env:
            other = {**env.bus.overrides(), **shared, "gemini_base_url": env.emulator.base_url}
            async with serving(env.session, **other) as second:
                yield env, second


async def test_a_spent_budget_refuses_misses_on_every_gateway_but_serves_hits(
    gateways: tuple[JobEnv, Gateway],
) -> None:
    env, second = gateways
    first = env.gateway
    tag = new_id("budget")
    priced = await first.generate({"model": "flash", "prompt": f"{tag} price"})
    assert priced.status == 200, priced.body
    cost = priced.body["cost"]["total_usd"]
    assert cost > 0
    async with (
        BusTap.completions(env.bus, BUDGET_THRESHOLD_KEY) as tap,
        receiving() as receiver,
    ):
        # The tenant's endpoint subscribed to threshold notices (and only to them)
        _, secret = await register(env, receiver.url, ["budget.threshold"])
        # Room for one and a half answers: half of it is the soft threshold.
        await set_budget(first, cost * 1.5, RULES_TTL_S)
        kept = await first.generate({"model": "flash", "prompt": f"{tag} one"})
        assert kept.status == 200, kept.body
        also = await second.generate({"model": "flash", "prompt": f"{tag} two"})
        assert also.status == 200, also.body  # 1 of 1.5 spent, on the other gateway
        calls = await env.emulator.calls()

        refused = await first.generate({"model": "flash", "prompt": f"{tag} three"})

        assert refused.status == 429
        assert refused.body["error"]["type"] == "budget_exceeded"
        assert refused.body["error"]["retryable"] is False
        now = datetime.now(UTC)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        until_midnight = 86400 - (now - midnight).total_seconds()
        assert abs(int(refused.headers["Retry-After"]) - until_midnight) <= 5
        assert await env.emulator.calls() == calls  # no upstream call was made
        # What is cached costs nothing: still served, from either gateway.
        hit = await second.generate({"model": "flash", "prompt": f"{tag} one"})
        assert hit.status == 200
        assert hit.headers["X-Cache"] == "HIT"
        # The OpenAI surface says the same, and tells the SDK not to retry.
        sdk = openai.AsyncOpenAI(base_url=second.url + "/v1", api_key="any", max_retries=2)
        with pytest.raises(openai.RateLimitError) as raised:
            await sdk.chat.completions.create(
                model="flash", messages=[{"role": "user", "content": f"{tag} four"}]
            )
        assert raised.value.response.headers["x-should-retry"] == "false"
        assert await env.emulator.calls() == calls
        await sdk.close()

        notices = await _threshold_notices(tap)
        # The endpoint got the same notice, signed with its secret, and nothing else
        (delivered,) = await receiver.wait_for(1, timeout_s=20)
        await asyncio.sleep(0.5)
        assert len(receiver.received) == 1
        hooked = delivered.verify(secret)
        assert hooked["type"] == "budget.threshold"
        assert hooked["spent_usd"] == pytest.approx(cost)
    assert len(notices) == 1, notices
    event = notices[0].body
    assert event["schema"] == "promptbus.budget/v1"
    assert (event["tenant"], event["period"], event.get("key_id")) == (DEFAULT_TENANT, "day", None)
    assert event["spent_usd"] == pytest.approx(cost)
    assert event["limit_usd"] == pytest.approx(cost * 1.5)


async def _threshold_notices(tap: BusTap) -> list[Delivery]:
    """The tap's budget.threshold events, once one came and a little longer passed quietly."""
    async with asyncio.timeout(20):
        while not any(d.routing_key == BUDGET_THRESHOLD_KEY for d in tap.deliveries):  # noqa: ASYNC110 - filled by the tap's thread
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # a second notice, if one were sent, would have arrived
    return [d for d in tap.deliveries if d.routing_key == BUDGET_THRESHOLD_KEY]
