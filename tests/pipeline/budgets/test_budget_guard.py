"""Budgets hold per tenant and per key, per UTC day and month, shared across processes."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.budgets import BudgetGuard, BudgetRules, MemorySpend, RedisSpend, Spend, window
from pipeline.budgets.guard import ThresholdCrossed
from pipeline.db import create_engine, upgrade
from pipeline.db.tables import ApiKey, Budget, Tenant, UsageRecord
from pipeline.errors import BudgetExceeded
from pipeline.redis_client import RedisKeys
from tests.support.redis_servers import redis_run
from tests.support.settings import settings_for_test

# Today's noon: counters are forgotten an hour after their period ends by the real clock,
# so the periods under test are today's and this month's.
NOON = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings_for_test(database_url=database_url))
    await upgrade(engine)
    async with engine.begin() as connection:
        for tenant in ("acme", "globex"):
            await connection.execute(
                insert(Tenant).values(id=tenant, name=tenant, created_at=NOON, disabled=False)
            )
        await connection.execute(
            insert(ApiKey).values(
                id="key_a",
                tenant_id="acme",
                name="ci",
                prefix="pb_aaaa",
                key_hash="a" * 64,
                created_at=NOON,
            )
        )
        await connection.execute(
            insert(Budget),
            [
                _budget("acme", None, "month", 10.0),
                _budget("acme", "key_a", "day", 1.0),
            ],
        )
    yield engine
    await engine.dispose()


def _budget(tenant: str, key: str | None, period: str, limit: float) -> dict[str, object]:
    return {
        "tenant_id": tenant,
        "key_id": key,
        "period": period,
        "limit_usd": limit,
        "soft_ratio": 0.8,
        "created_at": NOON,
    }


@pytest.fixture(params=["memory", "redis"])
async def spends(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Spend, Spend]]:
    """Two processes' spend counters: one shared pair on Redis, one process on memory."""
    if request.param == "memory":
        one = MemorySpend()
        yield one, one
        return
    async with redis_run() as run:
        keys = RedisKeys(run.prefix)
        yield RedisSpend(run.client(), keys), RedisSpend(run.client(), keys)


def _guard(
    engine: AsyncEngine, spend: Spend, crossed: list[ThresholdCrossed], at: datetime = NOON
) -> BudgetGuard:
    async def notify(event: ThresholdCrossed) -> None:
        crossed.append(event)

    return BudgetGuard(BudgetRules(engine, ttl_s=60), spend, notify, now=lambda: at)


async def test_a_spent_key_budget_refuses_until_the_day_ends(
    engine: AsyncEngine, spends: tuple[Spend, Spend]
) -> None:
    crossed: list[ThresholdCrossed] = []
    first, second = _guard(engine, spends[0], crossed), _guard(engine, spends[1], crossed)
    await first.check("acme", "key_a")
    await first.charge("acme", "key_a", 0.6)
    await second.charge("acme", "key_a", 0.5)  # another process: 1.1 of 1.0 spent
    with pytest.raises(BudgetExceeded) as refused:
        await first.check("acme", "key_a")
    assert refused.value.status == 429
    assert refused.value.retryable is False
    assert refused.value.retry_after_s == pytest.approx(12 * 3600)
    # The tenant's other callers (no key, another key) still have the month's budget.
    await second.check("acme", None)
    await second.check("acme", "key_b")
    # Tomorrow the key's day budget is fresh again.
    await _guard(engine, spends[0], crossed, NOON + timedelta(days=1)).check("acme", "key_a")


async def test_the_soft_threshold_is_reported_once_per_period(
    engine: AsyncEngine, spends: tuple[Spend, Spend]
) -> None:
    crossed: list[ThresholdCrossed] = []
    first, second = _guard(engine, spends[0], crossed), _guard(engine, spends[1], crossed)
    await first.charge("acme", None, 7.0)
    assert crossed == []
    await second.charge("acme", None, 1.5)  # 8.5 of 10: past 80 %
    await first.charge("acme", None, 0.5)
    assert [(c.rule.period, c.rule.key_id, c.window.id) for c in crossed] == [
        ("month", None, f"{NOON:%Y-%m}")
    ]
    assert crossed[0].spent_usd == pytest.approx(8.5)


async def test_a_tenant_without_budgets_is_never_refused(
    engine: AsyncEngine, spends: tuple[Spend, Spend]
) -> None:
    guard = _guard(engine, spends[0], [])
    await guard.charge("globex", None, 1_000_000.0)
    await guard.check("globex", None)


async def test_counters_start_from_the_ledger(
    engine: AsyncEngine, spends: tuple[Spend, Spend]
) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            insert(UsageRecord),
            [
                _record("acme", "key_a", NOON - timedelta(hours=1), 0.7),
                _record("acme", "key_a", NOON - timedelta(days=1), 5.0),  # yesterday
                _record("acme", None, NOON - timedelta(hours=2), 0.4),
                _record("globex", None, NOON, 9.0),
            ],
        )
    guard = _guard(engine, spends[0], [])
    assert await guard.reconcile(engine) == 2
    # Day budget of key_a: 0.7 today; one more 0.3 spends it.
    await guard.check("acme", "key_a")
    await guard.charge("acme", "key_a", 0.3)
    with pytest.raises(BudgetExceeded):
        await guard.check("acme", "key_a")


def _record(tenant: str, key: str | None, at: datetime, cost: float) -> dict[str, object]:
    return {
        "at": at,
        "tenant": tenant,
        "key_id": key,
        "request_id": "r",
        "surface": "generate",
        "streamed": False,
        "model": "flash",
        "input_tokens": 1,
        "output_tokens": 1,
        "cost_usd": cost,
        "saved_usd": 0.0,
        "latency_ms": 1.0,
        "status": "ok",
    }


def test_windows_are_utc_days_and_months() -> None:
    late = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert window("day", late).end == datetime(2027, 1, 1, tzinfo=UTC)
    month = window("month", late)
    assert (month.id, month.start, month.end) == (
        "2026-12",
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
