"""The delta feed, in memory and on a real Redis: runs, reads from a cursor, waits, bounds."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from pipeline.jobs.deltas import START, DeltaFeed, RunEnded
from pipeline.jobs.memory_deltas import MemoryDeltaFeed
from pipeline.jobs.redis_deltas import RedisDeltaFeed
from pipeline.redis_client import redis_from_url
from schemas import CompletionDelta
from tests.support.clock import FakeClock
from tests.support.redis_servers import RedisRun, redis_run
from tests.support.services import REDIS_URL
from tests.support.unique import new_id

MAX_DELTAS = 20


def redis_feed(
    run: RedisRun, *, max_deltas: int = MAX_DELTAS, retention_s: float = 600
) -> RedisDeltaFeed:
    """A feed on clients of its own, as a separate process would have."""
    return RedisDeltaFeed(
        run.client(),
        redis_from_url(REDIS_URL, timeout_s=7.0),
        prefix=run.prefix,
        max_deltas=max_deltas,
        retention_s=retention_s,
    )


@pytest.fixture(params=["memory", "redis"])
async def feed(request: pytest.FixtureRequest) -> AsyncIterator[DeltaFeed]:
    """Each feed in turn, keeping at most MAX_DELTAS entries per job."""
    if request.param == "memory":
        yield MemoryDeltaFeed(max_deltas=MAX_DELTAS, max_jobs=10, retention_s=600)
        return
    async with redis_run() as run:
        built = redis_feed(run)
        yield built
        await built.close()


def delta(job_id: str, index: int, text: str, *, run: int = 1) -> CompletionDelta:
    return CompletionDelta(
        job_id=job_id,
        correlation_id=f"corr-{job_id}",
        run=run,
        index=index,
        text=text,
        created=time.time(),
    )


async def test_a_reader_gets_every_entry_from_the_start_then_from_its_cursor(
    feed: DeltaFeed,
) -> None:
    # Given a job's first run with two deltas in its feed
    job_id = new_id("feed")
    assert await feed.open_run(job_id) == 1
    await feed.append(delta(job_id, 0, "Hello, "))
    await feed.append(delta(job_id, 1, "world"))

    # When a reader reads from the start
    first = await feed.read(job_id, START)

    # Then it gets both, in order, whole
    assert [e.text for e in first.entries if isinstance(e, CompletionDelta)] == ["Hello, ", "world"]
    head = first.entries[0]
    assert isinstance(head, CompletionDelta)
    assert (head.job_id, head.correlation_id, head.run, head.index) == (
        job_id,
        f"corr-{job_id}",
        1,
        0,
    )

    # When the run ends, and the reader reads on from its cursor
    await feed.end_run(job_id, 1, answered=True)
    rest = await feed.read(job_id, first.cursor)

    # Then it gets only the end marker, and after it nothing
    assert rest.entries == (RunEnded(1, answered=True),)
    assert (await feed.read(job_id, rest.cursor)).entries == ()

    # And a re-run has the next number, and its deltas follow in the same feed
    assert await feed.open_run(job_id) == 2
    await feed.append(delta(job_id, 0, "again", run=2))
    again = await feed.read(job_id, rest.cursor)
    assert [(e.run, e.index) for e in again.entries] == [(2, 0)]

    # And another job's feed is its own
    assert (await feed.read(new_id("other"), START)).entries == ()


async def test_a_waiting_reader_wakes_at_the_next_append_and_a_quiet_wait_is_bounded(
    feed: DeltaFeed,
) -> None:
    # Given a reader waiting on a job whose generation has not started
    job_id = new_id("wait")
    reader = asyncio.create_task(feed.read(job_id, START, wait_s=5))
    await asyncio.sleep(0.2)
    assert not reader.done()

    # When the first delta is appended
    started = time.monotonic()
    await feed.open_run(job_id)
    await feed.append(delta(job_id, 0, "first"))

    # Then the reader has it at once, well before its wait ran out
    page = await asyncio.wait_for(reader, 3)
    assert [e.text for e in page.entries] == ["first"]
    assert time.monotonic() - started < 1.5

    # And a wait with nothing new ends by itself after its bound, empty, at the same cursor
    started = time.monotonic()
    quiet = await feed.read(job_id, page.cursor, wait_s=0.3)
    assert quiet.entries == ()
    assert quiet.cursor == page.cursor
    assert 0.25 <= time.monotonic() - started < 2


async def test_a_feed_keeps_only_its_newest_entries(feed: DeltaFeed) -> None:
    # Given more deltas than the feed keeps
    job_id = new_id("bounded")
    await feed.open_run(job_id)
    for index in range(MAX_DELTAS + 15):
        await feed.append(delta(job_id, index, f"{index} "))

    # When a late reader reads from the start
    page = await feed.read(job_id, START, limit=1000)

    # Then it gets the newest MAX_DELTAS, in order (the index shows what it missed)
    assert [e.index for e in page.entries] == list(range(15, MAX_DELTAS + 15))


async def test_a_page_is_bounded_and_the_reader_reads_on_from_its_cursor(feed: DeltaFeed) -> None:
    # Given ten deltas
    job_id = new_id("pages")
    await feed.open_run(job_id)
    for index in range(10):
        await feed.append(delta(job_id, index, "x"))

    # When they are read four at a time
    seen, cursor = [], START
    for _ in range(4):
        page = await feed.read(job_id, cursor, limit=4)
        seen.append([e.index for e in page.entries])
        cursor = page.cursor

    # Then each page holds at most four, and together they hold each delta once
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], []]


async def test_the_memory_feed_keeps_feeds_of_at_most_max_jobs_and_for_the_retention() -> None:
    # Given a memory feed for two jobs at most, keeping a feed 60 s after its last write
    clock = FakeClock(1_000_000.0)
    feed = MemoryDeltaFeed(max_deltas=10, max_jobs=2, retention_s=60, clock=clock)
    for job_id in ("a", "b"):
        await feed.open_run(job_id)
        await feed.append(delta(job_id, 0, job_id))

    # When a third job streams
    await feed.open_run("c")
    await feed.append(delta("c", 0, "c"))

    # Then the least recently written feed is gone, the others stay
    assert (await feed.read("a")).entries == ()
    assert len((await feed.read("b")).entries) == 1
    assert len((await feed.read("c")).entries) == 1

    # And once the retention has passed since a feed's last write, it is gone too
    clock.advance(61)
    assert (await feed.read("b")).entries == ()
    assert await feed.open_run("b") == 1  # begun afresh


async def test_the_redis_feed_expires_after_the_retention_and_is_shared_across_clients() -> None:
    async with redis_run() as run:
        # Given two feeds on clients of their own (two processes), keeping entries for 1 s
        writer, reader = redis_feed(run, retention_s=1), redis_feed(run, retention_s=1)
        try:
            job_id = new_id("shared")
            assert await writer.open_run(job_id) == 1
            await writer.append(delta(job_id, 0, "from the worker"))

            # Then the other process reads what the first wrote, and opens the next run
            page = await reader.read(job_id)
            assert [e.text for e in page.entries] == ["from the worker"]
            assert await reader.open_run(job_id) == 2

            # And the stream and its run counter expire within the retention
            client = run.client()
            assert 0 < await client.pttl(f"{run.prefix}job-deltas:{job_id}") <= 1000
            assert 0 < await client.pttl(f"{run.prefix}job-delta-runs:{job_id}") <= 1000
            await asyncio.sleep(1.2)
            assert (await reader.read(job_id)).entries == ()
            assert await run.keys() == []
        finally:
            await writer.close()
            await reader.close()
