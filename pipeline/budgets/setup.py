"""The budget guard a process runs with: rules from the database, spend in Redis or here."""

import asyncio
from typing import Protocol

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.budgets.counters import MemorySpend, RedisSpend, Spend
from pipeline.budgets.guard import BudgetGuard, ThresholdCrossed
from pipeline.budgets.rules import BudgetRules
from pipeline.errors import PromptbusError
from pipeline.redis_client import RedisKeys
from pipeline.settings import Settings
from schemas.budgets import BudgetThreshold

log = structlog.get_logger("promptbus.budgets")

# Threshold notices being published at once; past this they are logged and dropped.
_MAX_PENDING_NOTICES = 64


class ThresholdSink(Protocol):
    """Where threshold events go: the bus (pipeline.bus.publisher.EventPublisher)."""

    async def publish_budget_threshold(self, event: BudgetThreshold) -> None:
        """Publish one `budget.threshold` event."""
        ...


class ThresholdWebhooks(Protocol):
    """Where threshold notices go to the tenant's endpoints (pipeline.webhooks.scheduler)."""

    async def schedule_budget(self, event: BudgetThreshold) -> object:
        """Queue the event's deliveries to the endpoints subscribed to `budget.threshold`."""
        ...


class ThresholdNotices:
    """Publishes `budget.threshold` events off the request path, a bounded number at once,
    on the bus and to the tenant's webhook endpoints that subscribe to them."""

    def __init__(self, publisher: ThresholdSink, webhooks: ThresholdWebhooks | None) -> None:
        self._publisher = publisher
        self._webhooks = webhooks
        self._pending: set[asyncio.Task[None]] = set()

    async def __call__(self, crossed: ThresholdCrossed) -> None:
        """Start publishing the event for `crossed`; the charge that crossed does not wait."""
        rule = crossed.rule
        event = BudgetThreshold(
            tenant=rule.tenant,
            key_id=rule.key_id,
            period=rule.period,
            window=crossed.window.id,
            limit_usd=rule.limit_usd,
            spent_usd=round(crossed.spent_usd, 9),
            soft_ratio=rule.soft_ratio,
            renews_at=crossed.window.end.timestamp(),
        )
        log.info("budget past its threshold", tenant=rule.tenant, key_id=rule.key_id)
        if len(self._pending) >= _MAX_PENDING_NOTICES:
            log.warning("budget threshold notice dropped: too many pending", tenant=rule.tenant)
            return
        task = asyncio.create_task(self._publish(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self, event: BudgetThreshold) -> None:
        try:
            await self._publisher.publish_budget_threshold(event)
        except PromptbusError as exc:
            log.warning("budget threshold event not published", error=exc.message)
        if self._webhooks is None:
            return
        try:
            await self._webhooks.schedule_budget(event)
        except PromptbusError as exc:
            log.warning("budget threshold webhooks not queued", error=exc.message)


def build_budgets(
    settings: Settings,
    database: AsyncEngine,
    redis: Redis | None,
    publisher: ThresholdSink,
    webhooks: ThresholdWebhooks | None = None,
) -> BudgetGuard:
    """The guard: budget rows re-read every `budget_rules_ttl_s`, spend shared when Redis is."""
    spend: Spend = (
        MemorySpend() if redis is None else RedisSpend(redis, RedisKeys(settings.redis_prefix))
    )
    rules = BudgetRules(database, ttl_s=settings.budget_rules_ttl_s)
    return BudgetGuard(rules, spend, ThresholdNotices(publisher, webhooks))
