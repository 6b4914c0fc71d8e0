"""The job stores' records, memory and Redis: create, read, move to a final state, delete, list."""

from pipeline.jobs.store import JobStore
from schemas import ErrorDetail, JobState
from tests.support.clock import FakeClock
from tests.support.envelopes import answer
from tests.support.job_store import finish, job

# The shared fixtures, imported so pytest finds them here.


async def test_create_get_and_a_duplicate_create(store: JobStore, clock: FakeClock) -> None:
    # Given a new job
    first = job("job_a", clock)

    # When it is created, then created again under the same id
    created = await store.create(first)
    again = await store.create(first.model_copy(update={"correlation_id": "other"}))

    # Then the first create wins and the record is the first job
    assert (created, again) == (True, False)
    assert await store.get("job_a") == first
    assert await store.get("job_unknown") is None


async def test_transitions_stamp_the_clock_and_a_finished_job_is_final(
    store: JobStore, clock: FakeClock
) -> None:
    # Given a queued job
    await store.create(job("job_a", clock))

    # When it runs, then succeeds, a little later each time
    clock.advance(1)
    running = await store.transition("job_a", JobState.RUNNING, stage="generate")
    clock.advance(2)
    done = await store.transition("job_a", JobState.SUCCEEDED, stage="emit", result=answer())

    # Then each change is recorded with its time, and only the final one is finished
    assert running is not None
    assert (running.state, running.stage, running.finished) == (JobState.RUNNING, "generate", False)
    assert running.updated_at == clock.now - 2
    assert running.finished_at is None
    assert done is not None
    assert done.finished
    assert done.finished_at == done.updated_at == clock.now
    assert done.result == answer()

    # And nothing moves it any more, cancel included
    error = ErrorDetail(type="cancelled", message="late", retryable=False)
    assert await store.transition("job_a", JobState.CANCELLED, error=error) is None
    assert await store.transition("job_a", JobState.RUNNING) is None
    assert await store.get("job_a") == done

    # And an unknown job cannot move
    assert await store.transition("job_unknown", JobState.RUNNING) is None


async def test_delete_forgets_a_job(store: JobStore, clock: FakeClock) -> None:
    # Given two jobs
    await store.create(job("job_a", clock))
    await store.create(job("job_b", clock))

    # When one is deleted (twice: the second time is a no-op)
    await store.delete("job_a")
    await store.delete("job_a")

    # Then it is gone from reads, moves and the list
    assert await store.get("job_a") is None
    assert await store.transition("job_a", JobState.RUNNING) is None
    page = await store.list(tenant="default", state=None, limit=10, cursor=None)
    assert [j.id for j in page.data] == ["job_b"]

    # And its id can be used afresh, listed once, as the new job
    await store.delete("job_b")
    clock.advance(1)
    assert await store.create(job("job_b", clock)) is True
    page = await store.list(tenant="default", state=None, limit=10, cursor=None)
    assert [(j.id, j.created_at) for j in page.data] == [("job_b", clock.now)]


async def test_list_pages_newest_first_with_filters(store: JobStore, clock: FakeClock) -> None:
    # Given five jobs, one a second, the second and fourth finished, and one of another tenant
    for n in range(1, 6):
        await store.create(job(f"job_{n}", clock))
        clock.advance(1)
    await store.create(job("job_other", clock, tenant="acme"))
    await finish(store, "job_2")
    await finish(store, "job_4")

    # When they are listed two at a time
    pages = []
    cursor = None
    while True:
        page = await store.list(tenant="default", state=None, limit=2, cursor=cursor)
        pages.append([j.id for j in page.data])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    # Then the pages run newest first, without the other tenant's job
    assert pages == [["job_5", "job_4"], ["job_3", "job_2"], ["job_1"]]

    # And a state filter pages within that state
    succeeded = await store.list(tenant="default", state=JobState.SUCCEEDED, limit=1, cursor=None)
    assert [j.id for j in succeeded.data] == ["job_4"]
    assert succeeded.next_cursor is not None
    rest = await store.list(
        tenant="default", state=JobState.SUCCEEDED, limit=1, cursor=succeeded.next_cursor
    )
    assert [j.id for j in rest.data] == ["job_2"]
    assert rest.next_cursor is None

    # And a page that is exactly full has no cursor when nothing follows
    exact = await store.list(tenant="acme", state=None, limit=1, cursor=None)
    assert ([j.id for j in exact.data], exact.next_cursor) == (["job_other"], None)
