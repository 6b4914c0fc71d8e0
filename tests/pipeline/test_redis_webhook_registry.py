"""The webhook registries, memory and Redis, each used by two processes: endpoints and logs."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from pipeline.webhooks.redis_registry import RedisWebhookRegistry
from pipeline.webhooks.registry import ROTATION_OVERLAP_S, MemoryWebhookRegistry, WebhookRegistry
from schemas.webhooks import Attempt, EndpointCreate, EventType, Outcome
from tests.support.clock import FakeClock
from tests.support.redis_servers import RedisRun, redis_run

Pair = tuple[WebhookRegistry, WebhookRegistry]


@pytest.fixture
async def run() -> AsyncIterator[RedisRun]:
    async with redis_run() as redis:
        yield redis


def redis_registry(
    run: RedisRun, clock: FakeClock, *, max_jobs_tracked: int = 100, retention_s: float = 600.0
) -> RedisWebhookRegistry:
    """A registry on a client of its own, as a separate process would have."""
    return RedisWebhookRegistry(
        run.client(),
        prefix=run.prefix,
        max_jobs_tracked=max_jobs_tracked,
        retention_s=retention_s,
        clock=clock,
    )


@pytest.fixture(params=["memory", "redis"])
async def pair(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Pair]:
    """Two processes' views of one registry (for memory, the same object twice)."""
    if request.param == "memory":
        memory = MemoryWebhookRegistry(max_jobs_tracked=3, clock=clock)
        yield memory, memory
        return
    async with redis_run() as run:
        yield (
            redis_registry(run, clock, max_jobs_tracked=3),
            redis_registry(run, clock, max_jobs_tracked=3),
        )


def spec(url: str = "https://example.com/hook", *events: EventType) -> EndpointCreate:
    return EndpointCreate.model_validate({"url": url, "events": events} if events else {"url": url})


def attempt(job_id: str, endpoint_id: str | None, n: int = 0) -> Attempt:
    return Attempt(
        message_id=f"msg_{job_id}",
        job_id=job_id,
        endpoint_id=endpoint_id,
        url="https://example.com/hook",
        attempt=n,
        at=1000.0 + n,
        duration_ms=12.5,
        status=500,
        outcome=Outcome.RETRYING,
        next_attempt_in_s=5.0,
    )


async def test_endpoints_are_created_read_listed_and_deleted(pair: Pair, clock: FakeClock) -> None:
    # Given two endpoints of one tenant and one of another, made by one process
    a, b = pair
    first, secret = await a.create("default", spec("https://one.example/hook"))
    clock.advance(1)
    second, _ = await a.create("default", spec("https://two.example/hook"))
    await a.create("acme", spec())

    # Then the other process reads them, oldest first, each tenant its own
    assert secret.startswith("whsec_")
    assert await b.get(first.id) == first
    assert (first.url, first.created_at, first.disabled_at) == (
        "https://one.example/hook",
        clock.now - 1,
        None,
    )
    assert [e.id for e in await b.endpoints("default")] == [first.id, second.id]
    assert [e.tenant for e in await b.endpoints("acme")] == ["acme"]
    assert await b.get("ep_unknown") is None

    # When the other process deletes one, with its log
    await a.record(attempt("job_1", first.id))
    assert await b.delete(first.id) is True

    # Then it is gone for both, once
    assert await a.get(first.id) is None
    assert [e.id for e in await a.endpoints("default")] == [second.id]
    assert await a.secrets(first.id) == []
    assert await a.attempts_for_endpoint(first.id) == []
    assert await b.delete(first.id) is False
    assert await a.rotate(first.id) is None


async def test_rotation_keeps_the_old_secret_signing_for_a_day(
    pair: Pair, clock: FakeClock
) -> None:
    # Given an endpoint whose secret one process rotates
    a, b = pair
    endpoint, old = await a.create("default", spec())
    new = await b.rotate(endpoint.id)

    # Then both secrets sign, the new one first, until the day is over
    assert new is not None
    assert new != old
    assert await a.secrets(endpoint.id) == [new, old]
    clock.advance(ROTATION_OVERLAP_S - 1)
    assert await a.secrets(endpoint.id) == [new, old]
    clock.advance(2)
    assert await a.secrets(endpoint.id) == [new]

    # And a rotation keeps the old one's own expiry, not a fresh day
    newest = await a.rotate(endpoint.id)
    clock.advance(ROTATION_OVERLAP_S - 1)
    third = await b.rotate(endpoint.id)
    assert await a.secrets(endpoint.id) == [third, newest, new]
    clock.advance(2)
    assert await a.secrets(endpoint.id) == [third, newest]


async def test_concurrent_rotations_each_give_a_secret_that_signs(pair: Pair) -> None:
    # Given an endpoint
    a, b = pair
    endpoint, first = await a.create("default", spec())

    # When both processes rotate it ten times at once
    rotated = await asyncio.gather(*(r.rotate(endpoint.id) for r in [a, b] * 10))

    # Then every secret handed out signs, none was lost to another rotation
    assert set(await a.secrets(endpoint.id)) == {first, *rotated}


async def test_subscribers_are_the_enabled_endpoints_that_want_the_event(pair: Pair) -> None:
    # Given endpoints for each event, for both, one disabled and one of another tenant
    a, b = pair
    both, _ = await a.create("default", spec())
    failed_only, _ = await a.create("default", spec("https://f.example/", "completion.failed"))
    disabled, _ = await a.create("default", spec())
    await a.create("acme", spec())
    await b.disable(disabled.id, "the endpoint answered 410 Gone")

    # Then each event goes to the enabled endpoints of the tenant that want it
    succeeded = await b.subscribers("default", "completion.succeeded")
    failed = await a.subscribers("default", "completion.failed")
    assert [e.id for e in succeeded] == [both.id]
    assert sorted(e.id for e in failed) == sorted([both.id, failed_only.id])


async def test_disable_is_stamped_once(pair: Pair, clock: FakeClock) -> None:
    # Given an endpoint disabled by one process
    a, b = pair
    endpoint, _ = await a.create("default", spec())
    await a.disable(endpoint.id, "first reason")

    # When the other disables it again later
    clock.advance(10)
    await b.disable(endpoint.id, "second reason")

    # Then the first disable stands; an unknown endpoint is left alone
    disabled = await b.get(endpoint.id)
    assert disabled is not None
    assert (disabled.disabled_at, disabled.disabled_reason) == (clock.now - 10, "first reason")
    await a.disable("ep_unknown", "why")
    assert await a.get("ep_unknown") is None


async def test_a_failing_streak_starts_at_its_first_failure_and_ends_at_a_success(
    pair: Pair,
) -> None:
    # Given an endpoint that fails at 100, then at 200 from the other process
    a, b = pair
    endpoint, _ = await a.create("default", spec())
    first = await a.failed(endpoint.id, 100.0)
    second = await b.failed(endpoint.id, 200.0)

    # Then the streak started at the first failure
    assert first is not None
    assert second is not None
    assert (first.failing_since, second.failing_since) == (100.0, 100.0)

    # When a delivery succeeds, the streak is over, and the next failure starts a new one
    await b.succeeded(endpoint.id)
    healthy = await a.get(endpoint.id)
    assert healthy is not None
    assert healthy.failing_since is None
    again = await a.failed(endpoint.id, 300.0)
    assert again is not None
    assert again.failing_since == 300.0
    assert await a.failed("ep_unknown", 1.0) is None


async def test_a_disable_racing_failures_is_never_lost(pair: Pair) -> None:
    # Given endpoints that both processes report on at once
    a, b = pair
    for _ in range(10):
        endpoint, _ = await a.create("default", spec())

        # When failures, successes and a disable land together
        await asyncio.gather(
            a.failed(endpoint.id, 100.0),
            b.succeeded(endpoint.id),
            b.failed(endpoint.id, 200.0),
            a.disable(endpoint.id, "every delivery failed for 5 days"),
            b.failed(endpoint.id, 300.0),
            a.succeeded(endpoint.id),
        )

        # Then the endpoint is disabled, with its reason
        final = await b.get(endpoint.id)
        assert final is not None
        assert final.disabled_reason == "every delivery failed for 5 days"


async def test_attempt_logs_are_kept_per_endpoint_and_per_job_and_capped(pair: Pair) -> None:
    # Given an endpoint, and 205 attempts for one job from both processes, then one of another
    a, b = pair
    endpoint, _ = await a.create("default", spec())
    for n in range(205):
        await (a if n % 2 else b).record(attempt("job_1", endpoint.id, n))
    await a.record(attempt("job_2", endpoint.id))
    await b.record(attempt("job_2", None, 1))

    # Then the endpoint keeps its latest 200, oldest first, the jobs their own
    by_endpoint = await b.attempts_for_endpoint(endpoint.id)
    assert [x.attempt for x in by_endpoint] == [*range(6, 205), 0]
    assert [x.job_id for x in by_endpoint[-2:]] == ["job_1", "job_2"]
    assert [x.attempt for x in await a.attempts_for_job("job_1")] == list(range(5, 205))
    assert await a.attempts_for_job("job_2") == [
        attempt("job_2", endpoint.id),
        attempt("job_2", None, 1),
    ]
    assert await a.attempts_for_job("job_unknown") == []


async def test_only_the_latest_jobs_keep_their_logs(pair: Pair) -> None:
    # Given a registry tracking three jobs, and attempts for five
    a, b = pair
    for n in range(5):
        await (a if n % 2 else b).record(attempt(f"job_{n}", None))
        await asyncio.sleep(0.002)  # Redis orders the jobs by the millisecond of their first

    # Then the two oldest jobs' logs are gone
    logs = [len(await b.attempts_for_job(f"job_{n}")) for n in range(5)]
    assert logs == [0, 0, 1, 1, 1]


async def test_a_job_log_expires_after_the_retention(run: RedisRun, clock: FakeClock) -> None:
    # Given a Redis registry keeping job logs for a second, with one attempt logged
    registry = redis_registry(run, clock, retention_s=1)
    await registry.record(attempt("job_1", None))
    ttl = await run.client().pttl(f"{run.prefix}job-attempts:job_1")
    assert 0 < ttl <= 1000

    # When the second has passed, the log is gone
    await asyncio.sleep(1.2)
    assert await registry.attempts_for_job("job_1") == []


async def test_a_late_attempt_leaves_no_log_for_a_deleted_endpoint(
    run: RedisRun, clock: FakeClock
) -> None:
    # Given an endpoint one process deletes while another is still delivering to it
    a, b = redis_registry(run, clock), redis_registry(run, clock)
    endpoint, _ = await a.create("default", spec())
    await a.delete(endpoint.id)

    # When the late attempt is recorded
    await b.record(attempt("job_1", endpoint.id))

    # Then the job keeps it, and nothing of the endpoint is left behind
    assert len(await b.attempts_for_job("job_1")) == 1
    keys = {key.decode().removeprefix(run.prefix) for key in await run.keys()}
    assert keys == {"job-attempts:job_1", "job-attempts-tracked"}
