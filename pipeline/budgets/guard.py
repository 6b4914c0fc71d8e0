"""The budget check before a call, and the charge after it.

`check` refuses a caller whose tenant or key has spent its budget for the period
(BudgetExceeded: a 429 that is not retryable, with Retry-After at the period's end).
`charge` adds an answer's cost; the first charge past a budget's soft share reports a
ThresholdCrossed, once per budget and period across every process.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.budgets.counters import Spend
from pipeline.budgets.periods import Window, window
from pipeline.budgets.rules import BudgetRule, BudgetRules
from pipeline.db.tables import UsageRecord
from pipeline.errors import BudgetExceeded

Now = Callable[[], datetime]

log = structlog.get_logger("promptbus.budgets")
_ADJECTIVE = {"day": "daily", "month": "monthly"}


@dataclass(frozen=True, slots=True)
class ThresholdCrossed:
    """A budget passed its soft share in a period: what `budget.threshold` events say."""

    rule: BudgetRule
    window: Window
    spent_usd: float


Notify = Callable[[ThresholdCrossed], Awaitable[None]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BudgetGuard:
    """Budgets of the callers, checked and charged against shared spend counters.

    With Redis unreachable a check lets the call through and a charge is lost (both logged):
    budgets guard against runaway spend, and refusing every caller while Redis is away
    would be the larger harm.
    """

    def __init__(
        self, rules: BudgetRules, spend: Spend, notify: Notify, now: Now = _utc_now
    ) -> None:
        self._rules = rules
        self._spend = spend
        self._notify = notify
        self._now = now

    async def check(self, tenant: str, key_id: str | None) -> None:
        """Refuse the call if any budget of the caller is spent (BudgetExceeded)."""
        rules = await self._rules.for_caller(tenant, key_id)
        if not rules:
            return
        now = self._now()
        windows = [window(rule.period, now) for rule in rules]
        try:
            spent = await self._spend.spent(
                [_name(r, w) for r, w in zip(rules, windows, strict=True)]
            )
        except RedisError as exc:
            # Spend shared in Redis is out of reach: serve rather than refuse everyone.
            log.warning("budget check skipped: Redis is unreachable", error=str(exc))
            return
        over = [
            (rule, win, used)
            for rule, win, used in zip(rules, windows, spent, strict=True)
            if used >= rule.limit_usd
        ]
        if over:
            # The budget that frees up last decides when a call can succeed.
            rule, win, used = max(over, key=lambda item: item[1].end)
            whose = f"key {rule.key_id}" if rule.key_id else f"tenant {rule.tenant}"
            raise BudgetExceeded(
                f"the {_ADJECTIVE[rule.period]} budget of {whose} is spent "
                f"({used:.4f} of {rule.limit_usd:.4f} USD); it renews at {win.end.isoformat()}",
                retry_after_s=win.seconds_left(now),
            )

    async def charge(self, tenant: str, key_id: str | None, cost_usd: float) -> None:
        """Add an answer's cost to the caller's budgets; report a first soft-threshold crossing."""
        if cost_usd <= 0:
            return
        rules = await self._rules.for_caller(tenant, key_id)
        if not rules:
            return
        now = self._now()
        windows = [window(rule.period, now) for rule in rules]
        names = [_name(rule, win) for rule, win in zip(rules, windows, strict=True)]
        ends = [win.end.timestamp() for win in windows]
        try:
            totals = await self._spend.add(names, cost_usd, ends)
        except RedisError as exc:
            log.warning("budget charge lost: Redis is unreachable", error=str(exc), usd=cost_usd)
            return
        for rule, win, name, total in zip(rules, windows, names, totals, strict=True):
            soft = rule.limit_usd * rule.soft_ratio
            if total >= soft > total - cost_usd and await self._spend.once(
                name, win.end.timestamp()
            ):
                await self._notify(ThresholdCrossed(rule, win, total))

    async def reconcile(self, engine: AsyncEngine) -> int:
        """Start every budget's counter from the ledger's records of its current period.

        A counter that already exists (kept in Redis by a running process) is left alone.
        Returns how many budgets were reconciled.
        """
        rules = await self._rules.every()
        now = self._now()
        async with engine.connect() as connection:
            for rule in rules:
                win = window(rule.period, now)
                query = select(func.coalesce(func.sum(UsageRecord.cost_usd), 0.0)).where(
                    UsageRecord.tenant == rule.tenant, UsageRecord.at >= win.start
                )
                if rule.key_id is not None:
                    query = query.where(UsageRecord.key_id == rule.key_id)
                spent = float((await connection.execute(query)).scalar_one())
                try:
                    await self._spend.seed(_name(rule, win), spent, win.end.timestamp())
                except RedisError as exc:
                    log.warning("budgets not reconciled: Redis is unreachable", error=str(exc))
                    return 0
        return len(rules)


def _name(rule: BudgetRule, win: Window) -> str:
    return f"{rule.scope}/{win.id}"
