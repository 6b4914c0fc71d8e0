"""Webhook delivery: one signed attempt, and what follows from its outcome."""

import time
from collections.abc import Sequence

from pipeline.tracing.deliveries import attempted, delivery_span
from pipeline.webhooks.context import WebhookContext
from pipeline.webhooks.sender import SendResult
from pipeline.webhooks.signing import signed_headers
from schemas.webhooks import Attempt, DeliveryTask, Outcome

MAX_RETRY_AFTER_S = 24 * 3600
_RETRY_STATUSES = frozenset({408, 429})


async def deliver(task: DeliveryTask, ctx: WebhookContext) -> Attempt | None:
    """Make one attempt, record it, and say whether (and when) to try again.

    None when this attempt was made already: a broker may hand a delayed task out
    twice (Redis past its visibility timeout), and an attempt is made once. The attempt
    has a span of its own, in the trace of the job whose completion it delivers.
    """
    with delivery_span(ctx.tracer, task) as span:
        attempt = await _deliver(task, ctx)
        attempted(span, attempt)
        return attempt


async def _deliver(task: DeliveryTask, ctx: WebhookContext) -> Attempt | None:
    ttl_s = sum(ctx.retry_schedule_s) + 86400
    if not await ctx.claim("webhook-attempt", f"{task.delivery_id}:{task.attempt}", ttl_s):
        return None
    if task.endpoint_id is None:
        secrets = await ctx.tenant_secrets(task.tenant)
    else:
        endpoint = await ctx.registry.get(task.endpoint_id)
        if endpoint is None or endpoint.disabled_at is not None:
            reason = "endpoint deleted" if endpoint is None else "endpoint disabled"
            return await _record(ctx, task, SendResult(0.0, error=reason), Outcome.FAILED)
        secrets = await ctx.registry.secrets(task.endpoint_id)
    body = task.event.model_dump_json(by_alias=True, exclude_none=True).encode()
    headers = signed_headers(secrets, task.message_id, int(time.time()), body)
    result = await ctx.sender.post(task.url, body, headers)
    outcome, wait_s = _judge(result, task.attempt, ctx.retry_schedule_s)
    if task.endpoint_id is not None:
        await _track_endpoint(ctx, task.endpoint_id, result, outcome)
    return await _record(ctx, task, result, outcome, wait_s)


def _judge(
    result: SendResult, attempt: int, schedule: Sequence[float]
) -> tuple[Outcome, float | None]:
    """The outcome of an attempt and, when retrying, the seconds to wait."""
    if result.refused:
        return Outcome.REFUSED, None
    status = result.status
    if status is not None and 200 <= status < 300:
        return Outcome.DELIVERED, None
    retryable = status is None or status in _RETRY_STATUSES or status >= 500
    if not retryable or attempt >= len(schedule):
        # 3xx (redirects are not followed), 410 and other 4xx fail at once.
        return Outcome.FAILED, None
    wait_s = schedule[attempt]
    if result.retry_after_s is not None:
        wait_s = min(max(wait_s, result.retry_after_s), MAX_RETRY_AFTER_S)
    return Outcome.RETRYING, wait_s


async def _track_endpoint(
    ctx: WebhookContext, endpoint_id: str, result: SendResult, outcome: Outcome
) -> None:
    if outcome is Outcome.DELIVERED:
        await ctx.registry.succeeded(endpoint_id)
        return
    if result.status == 410:
        await ctx.registry.disable(endpoint_id, "the endpoint answered 410 Gone")
        return
    now = time.time()
    endpoint = await ctx.registry.failed(endpoint_id, now)
    failing_since = endpoint.failing_since if endpoint is not None else None
    if failing_since is not None and now - failing_since >= ctx.disable_after_s:
        await ctx.registry.disable(
            endpoint_id, f"every delivery failed for {_duration(ctx.disable_after_s)}"
        )


async def _record(
    ctx: WebhookContext,
    task: DeliveryTask,
    result: SendResult,
    outcome: Outcome,
    wait_s: float | None = None,
) -> Attempt:
    attempt = Attempt(
        message_id=task.message_id,
        job_id=task.job_id,
        endpoint_id=task.endpoint_id,
        url=task.url,
        attempt=task.attempt,
        at=time.time(),
        duration_ms=result.duration_ms,
        status=result.status,
        outcome=outcome,
        error=result.error,
        response_excerpt=result.excerpt,
        next_attempt_in_s=wait_s,
    )
    await ctx.registry.record(attempt)
    ctx.metrics.webhook(outcome.value)
    return attempt


def _duration(seconds: float) -> str:
    """A period in the unit people use for it."""
    if seconds >= 86400:
        return f"{seconds / 86400:g} days"
    if seconds >= 3600:
        return f"{seconds / 3600:g} hours"
    return f"{seconds:g} seconds"
