"""The budgets that apply to a caller, read from the database and kept briefly in process."""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.budgets.periods import PERIODS, Period
from pipeline.db.tables import Budget

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class BudgetRule:
    """One budget: a tenant's (key_id None) or one key's, per day or month."""

    tenant: str
    key_id: str | None
    period: Period
    limit_usd: float
    soft_ratio: float

    @property
    def scope(self) -> str:
        """What the rule counts: the tenant's or the key's spend, in its period."""
        return f"{self.tenant}/{self.key_id or '*'}/{self.period}"


class BudgetRules:
    """Every budget row, reloaded at most every `ttl_s`: a change reaches each process within it.

    The whole table is read at once: budgets are few (one or two per tenant or key), and
    a reload costs one query however many callers ask meanwhile.
    """

    def __init__(self, engine: AsyncEngine, *, ttl_s: float, clock: Clock = time.monotonic):
        self._engine = engine
        self._ttl_s = ttl_s
        self._clock = clock
        self._by_tenant: dict[str, tuple[BudgetRule, ...]] = {}
        self._loaded_at: float | None = None
        # Callers that find the rules stale together wait for one reload, not one each.
        self._reloading = asyncio.Lock()

    async def for_caller(self, tenant: str, key_id: str | None) -> tuple[BudgetRule, ...]:
        """The tenant's budgets and those of its key `key_id`."""
        await self._fresh()
        return tuple(
            rule
            for rule in self._by_tenant.get(tenant, ())
            if rule.key_id is None or rule.key_id == key_id
        )

    async def every(self) -> tuple[BudgetRule, ...]:
        """Every budget of every tenant."""
        await self._fresh()
        return tuple(rule for rules in self._by_tenant.values() for rule in rules)

    def _stale(self) -> bool:
        return self._loaded_at is None or self._clock() - self._loaded_at >= self._ttl_s

    async def _fresh(self) -> None:
        if not self._stale():
            return
        async with self._reloading:
            if self._stale():
                await self._reload()

    async def _reload(self) -> None:
        async with self._engine.connect() as connection:
            columns = (Budget.tenant_id, Budget.key_id, Budget.period)
            query = select(*columns, Budget.limit_usd, Budget.soft_ratio)
            rows = (await connection.execute(query)).all()
        by_tenant: dict[str, list[BudgetRule]] = {}
        for tenant, key_id, name, limit_usd, soft_ratio in rows:
            if name not in PERIODS:
                continue
            period: Period = "day" if name == "day" else "month"
            rule = BudgetRule(tenant, key_id, period, limit_usd, soft_ratio)
            by_tenant.setdefault(tenant, []).append(rule)
        self._by_tenant = {tenant: tuple(rules) for tenant, rules in by_tenant.items()}
        self._loaded_at = self._clock()
