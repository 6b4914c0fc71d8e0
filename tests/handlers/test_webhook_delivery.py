"""Webhook delivery decisions: what each answer means, how long to wait, and attempts made once."""

from collections.abc import AsyncIterator

import pytest

from handlers.webhook_delivery import MAX_RETRY_AFTER_S, _judge, deliver
from pipeline.jobs.memory import MemoryJobStore
from pipeline.webhooks.context import WebhookContext
from pipeline.webhooks.registry import MemoryWebhookRegistry
from pipeline.webhooks.sender import SendResult, WebhookSender, _retry_after
from pipeline.webhooks.setup import LOOPBACK_ONLY
from schemas import CompletionEvent, ErrorDetail, JobState
from schemas.webhooks import DeliveryTask, EndpointCreate, Outcome
from tests.support.settings import TEST_WEBHOOK_SECRET
from tests.support.webhook_receivers import Answer, receiving

SCHEDULE = (5.0, 300.0, 1800.0)


def answered(status: int, retry_after_s: float | None = None) -> SendResult:
    return SendResult(duration_ms=1.0, status=status, retry_after_s=retry_after_s)


NO_ANSWER = SendResult(duration_ms=1.0, error="ClientConnectorError: refused by the peer")
TIMED_OUT = SendResult(duration_ms=15000.0, error="timed out")
REFUSED = SendResult(duration_ms=0.1, error="refused: loopback", refused=True)


@pytest.mark.parametrize(
    ("result", "attempt", "expected"),
    [
        # 2xx: delivered, whatever the attempt
        (answered(200), 0, (Outcome.DELIVERED, None)),
        (answered(204), 2, (Outcome.DELIVERED, None)),
        (answered(299), 3, (Outcome.DELIVERED, None)),
        # network faults, timeouts, 408, 429 and 5xx: retried after the schedule's wait
        (NO_ANSWER, 0, (Outcome.RETRYING, 5.0)),
        (TIMED_OUT, 1, (Outcome.RETRYING, 300.0)),
        (answered(408), 0, (Outcome.RETRYING, 5.0)),
        (answered(429), 1, (Outcome.RETRYING, 300.0)),
        (answered(500), 2, (Outcome.RETRYING, 1800.0)),
        (answered(503), 0, (Outcome.RETRYING, 5.0)),
        (answered(599), 0, (Outcome.RETRYING, 5.0)),
        # ... until the schedule is used up
        (answered(500), 3, (Outcome.FAILED, None)),
        (NO_ANSWER, 3, (Outcome.FAILED, None)),
        (answered(429, retry_after_s=1.0), 3, (Outcome.FAILED, None)),
        # Retry-After lengthens a wait, never shortens it, and is capped at a day
        (answered(429, retry_after_s=60.0), 0, (Outcome.RETRYING, 60.0)),
        (answered(503, retry_after_s=1.0), 1, (Outcome.RETRYING, 300.0)),
        (answered(429, retry_after_s=10.0**9), 0, (Outcome.RETRYING, MAX_RETRY_AFTER_S)),
        # a Retry-After on an answer that is not retried changes nothing
        (answered(400, retry_after_s=60.0), 0, (Outcome.FAILED, None)),
        # redirects (never followed), 410 and every other 4xx fail at once
        (answered(301), 0, (Outcome.FAILED, None)),
        (answered(302), 0, (Outcome.FAILED, None)),
        (answered(307), 0, (Outcome.FAILED, None)),
        (answered(400), 0, (Outcome.FAILED, None)),
        (answered(401), 0, (Outcome.FAILED, None)),
        (answered(404), 0, (Outcome.FAILED, None)),
        (answered(410), 0, (Outcome.FAILED, None)),
        (answered(422), 0, (Outcome.FAILED, None)),
        # the SSRF guard's refusal is final, and says so
        (REFUSED, 0, (Outcome.REFUSED, None)),
        (REFUSED, 3, (Outcome.REFUSED, None)),
    ],
)
def test_judge_decides_outcome_and_wait(
    result: SendResult, attempt: int, expected: tuple[Outcome, float | None]
) -> None:
    # Given what one attempt got, and which attempt it was
    # When it is judged against a three-wait schedule
    judged = _judge(result, attempt, SCHEDULE)

    # Then the outcome and the wait are the table's
    assert judged == expected


def test_judge_with_an_empty_schedule_never_retries() -> None:
    # Given no waits at all
    # When a retryable failure is judged
    # Then it fails at once
    assert _judge(answered(503), 0, ()) == (Outcome.FAILED, None)
    assert _judge(answered(200), 0, ()) == (Outcome.DELIVERED, None)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("1", 1.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("1.5", None),
        ("-1", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after_reads_only_delta_seconds(header: str | None, seconds: float | None) -> None:
    # Given a Retry-After header value (or none)
    # When it is read
    # Then only whole delta-seconds count
    assert _retry_after(header) == seconds


# --- one attempt, with a real sender and a loopback receiver -------------------------------


def event(job_id: str) -> CompletionEvent:
    return CompletionEvent(
        job_id=job_id,
        correlation_id=job_id,
        state=JobState.FAILED,
        error=ErrorDetail(type="cancelled", message="the job was cancelled", retryable=False),
        finished_at=1.0,
    )


@pytest.fixture
async def context() -> AsyncIterator[WebhookContext]:
    sender = WebhookSender(LOOPBACK_ONLY, timeout_s=5.0, max_concurrency=4, per_endpoint=2)
    jobs = MemoryJobStore(retention_s=3600, max_jobs=100)

    async def tenant_secrets(_tenant: str) -> list[str]:
        return [TEST_WEBHOOK_SECRET]

    yield WebhookContext(
        registry=MemoryWebhookRegistry(max_jobs_tracked=100),
        sender=sender,
        tenant_secrets=tenant_secrets,
        claim=jobs.claim,
        retry_schedule_s=(0.1, 0.1),
        disable_after_s=3600.0,
    )
    await sender.close()


def task_for(url: str, *, endpoint_id: str | None = None, attempt: int = 0) -> DeliveryTask:
    suffix = "" if endpoint_id is None else f".{endpoint_id}"
    return DeliveryTask(
        delivery_id="d1",
        message_id=f"msg_job_1{suffix}",
        tenant="default",
        job_id="job_1",
        endpoint_id=endpoint_id,
        url=url,
        event=event("job_1"),
        attempt=attempt,
    )


async def test_an_attempt_handed_out_twice_is_made_once(context: WebhookContext) -> None:
    async with receiving() as receiver:
        # Given a delivery task that a broker hands out twice
        task = task_for(receiver.url)

        # When both copies run
        first = await deliver(task, context)
        second = await deliver(task, context)

        # Then the receiver got one request, and one attempt was recorded
        assert first is not None
        assert first.outcome is Outcome.DELIVERED
        assert second is None
        assert len(receiver.received) == 1
        assert len(await context.registry.attempts_for_job("job_1")) == 1

        # And the next attempt of the same delivery is still made
        retry = await deliver(task.model_copy(update={"attempt": 1}), context)
        assert retry is not None
        assert len(receiver.received) == 2


async def test_a_deleted_endpoint_gets_no_request(context: WebhookContext) -> None:
    async with receiving() as receiver:
        # Given an endpoint deleted after its delivery was queued
        endpoint, _ = await context.registry.create("default", EndpointCreate(url=receiver.url))
        await context.registry.delete(endpoint.id)

        # When the delivery runs
        attempt = await deliver(task_for(receiver.url, endpoint_id=endpoint.id), context)

        # Then it fails without a request
        assert attempt is not None
        assert (attempt.outcome, attempt.error) == (Outcome.FAILED, "endpoint deleted")
        assert receiver.received == []


async def test_gone_disables_and_a_success_ends_a_failing_streak(context: WebhookContext) -> None:
    registry = context.registry
    async with receiving(Answer(500), Answer(200), then=Answer(410)) as receiver:
        # Given an endpoint whose receiver answers 500, then 200, then 410
        endpoint, secret = await registry.create("default", EndpointCreate(url=receiver.url))
        task = task_for(receiver.url, endpoint_id=endpoint.id)

        # When the first attempt fails
        failed = await deliver(task, context)

        # Then the endpoint's failing streak starts, and a retry is planned
        assert failed is not None
        assert (failed.outcome, failed.next_attempt_in_s) == (Outcome.RETRYING, 0.1)
        streak = await registry.get(endpoint.id)
        assert streak is not None
        assert streak.failing_since is not None

        # When the retry is delivered
        delivered = await deliver(task.model_copy(update={"attempt": 1}), context)

        # Then the streak is over
        assert delivered is not None
        assert delivered.outcome is Outcome.DELIVERED
        healthy = await registry.get(endpoint.id)
        assert healthy is not None
        assert healthy.failing_since is None

        # When a later message gets 410 Gone
        gone = await deliver(task.model_copy(update={"delivery_id": "d2"}), context)

        # Then it failed, and the endpoint is disabled, saying why
        assert gone is not None
        assert (gone.status, gone.outcome) == (410, Outcome.FAILED)
        disabled = await registry.get(endpoint.id)
        assert disabled is not None
        assert disabled.disabled_at is not None
        assert disabled.disabled_reason is not None
        assert "410" in disabled.disabled_reason
        # And every request was signed with the endpoint's secret
        for request in receiver.received:
            request.verify(secret)
