"""The job stores, memory and Redis, on what the sweeper relies on: which jobs stopped moving,
which completions are still in the outbox, conditional moves and claims seen while they hold."""

from pipeline.jobs.store import JobStore
from schemas import JobState
from tests.support.clock import FakeClock as Clock
from tests.support.job_store import finish, job


async def test_a_conditional_move_happens_only_when_the_job_meets_it(
    store: JobStore, clock: Clock
) -> None:
    # Given a queued job
    await store.create(job("job_a", clock))

    # When it is moved on condition that it has not started, twice
    first = await store.transition(
        "job_a", JobState.RUNNING, stage="lookup", when=lambda j: j.stage is None
    )
    second = await store.transition(
        "job_a", JobState.RUNNING, stage="lookup", when=lambda j: j.stage is None
    )

    # Then only the first moved it
    assert first is not None
    assert first.stage == "lookup"
    assert second is None
    held = await store.get("job_a")
    assert held is not None
    assert held.stage == "lookup"


async def test_unfinished_jobs_that_stopped_changing_are_found_oldest_change_first(
    store: JobStore, clock: Clock
) -> None:
    # Given three jobs created a second apart, the oldest moved on since, and one finished
    for name in ("job_a", "job_b", "job_c", "job_d"):
        await store.create(job(name, clock))
        clock.advance(1)
    await store.transition("job_a", JobState.RUNNING, stage="generate")
    await finish(store, "job_d")

    # When the jobs unchanged for 2 s or more are asked for, a while later
    clock.advance(1)
    stalled = await store.stalled(2.0, limit=10)

    # Then they are the unfinished ones that have not moved, oldest change first
    assert [j.id for j in stalled] == ["job_b", "job_c"]
    assert [j.id for j in await store.stalled(2.0, limit=1)] == ["job_b"]
    assert await store.stalled(60.0, limit=10) == []

    # And later the moved one is among them too, and a deleted one is not
    clock.advance(10)
    await store.delete("job_c")
    assert [j.id for j in await store.stalled(2.0, limit=10)] == ["job_b", "job_a"]


async def test_an_ended_job_stays_in_the_outbox_until_its_completion_is_delivered(
    store: JobStore, clock: Clock
) -> None:
    # Given two jobs that ended, one of them a while ago, and one still running
    for name in ("job_a", "job_b", "job_c"):
        await store.create(job(name, clock))
    await finish(store, "job_a")
    clock.advance(30)
    await store.transition("job_b", JobState.CANCELLED)
    await store.transition("job_c", JobState.RUNNING, stage="generate")

    # Then the outbox holds the ended ones, by age
    assert [j.id for j in await store.undelivered(0.0, limit=10)] == ["job_a", "job_b"]
    assert [j.id for j in await store.undelivered(10.0, limit=10)] == ["job_a"]

    # When one's completion is delivered
    await store.delivered("job_a")

    # Then only the other is left, and neither counts as stalled
    assert [j.id for j in await store.undelivered(0.0, limit=10)] == ["job_b"]
    assert [j.id for j in await store.stalled(0.0, limit=10)] == ["job_c"]


async def test_a_claim_is_seen_while_it_holds(store: JobStore) -> None:
    # Given a claim
    assert await store.claimed("spent", "job_a") is False
    assert await store.claim("spent", "job_a", 60.0)

    # Then it is seen, under its own kind and key only, until released
    assert await store.claimed("spent", "job_a") is True
    assert await store.claimed("spent", "job_b") is False
    assert await store.claimed("dispatch", "job_a") is False
    await store.release("spent", "job_a")
    assert await store.claimed("spent", "job_a") is False
