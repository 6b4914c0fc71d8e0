"""The batch store on SQLite and on the real PostgreSQL: one result per item, exact counts."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import inspect, update

from pipeline.batches import BatchStore, NewItem
from pipeline.batches.store import CANCELLED, utcnow
from pipeline.db import create_engine, upgrade
from pipeline.db.batch_tables import BatchRecord, FileRecord
from schemas.batches import BatchStatus
from tests.support.settings import settings_for_test


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[BatchStore]:
    engine = create_engine(settings_for_test(database_url=database_url))
    await upgrade(engine)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"files", "batches", "batch_items"} <= names
    yield BatchStore(engine, retention_s=3600)
    await engine.dispose()


def record(batch_id: str, tenant: str = "acme", total: int = 3) -> BatchRecord:
    now = utcnow()
    return BatchRecord(
        id=batch_id,
        tenant=tenant,
        key_id=None,
        mode="gateway",
        endpoint="/v1/generate",
        input_file_id=None,
        completion_window="24h",
        status=BatchStatus.IN_PROGRESS.value,
        total=total,
        completed=0,
        failed=0,
        created_at=now,
        expires_at=now + timedelta(hours=24),
        in_progress_at=now,
    )


def items(n: int) -> list[NewItem]:
    return [NewItem(f"c{i}", i, {"model": "flash", "prompt": str(i)}) for i in range(n)]


async def test_racing_runs_of_an_item_keep_one_result_and_count_it_once(store: BatchStore):
    await store.add_batch(record("batch_a"), items(3))
    # When ten runs of the same item finish at once
    kept = await asyncio.gather(
        *(store.finish_item("batch_a", "c1", ok=True, result={"run": n}) for n in range(10))
    )
    # Then one result stands and it is counted once
    assert kept.count(True) == 1
    batch = await store.batch("batch_a")
    assert batch is not None
    assert (batch.completed, batch.failed) == (1, 0)
    (only,) = await store.results("batch_a")
    assert only[0:2] == ("c1", "ok")
    assert sorted(i.custom_id for i in await store.pending("batch_a", 0, 3)) == ["c0", "c2"]


async def test_closing_ends_only_pending_items_and_counts_them_failed(store: BatchStore):
    await store.add_batch(record("batch_b"), items(3))
    await store.finish_item("batch_b", "c0", ok=False, result={"error": "x"})
    assert await store.close_pending("batch_b", CANCELLED) == 2
    assert await store.close_pending("batch_b", CANCELLED) == 0
    batch = await store.batch("batch_b")
    assert batch is not None
    assert (batch.completed, batch.failed) == (0, 3)
    assert [s for _, s, _ in await store.results("batch_b")] == ["error", "cancelled", "cancelled"]
    assert await store.unfinished("batch_b") is False


async def test_a_batch_moves_and_ends_once(store: BatchStore):
    await store.add_batch(record("batch_c"), items(1))
    moves = await asyncio.gather(
        *(
            store.move("batch_c", BatchStatus.FINALIZING, [BatchStatus.IN_PROGRESS])
            for _ in range(5)
        )
    )
    assert moves.count(True) == 1
    row = store.file_row(file_id="file-out", tenant="acme", purpose="batch_output", content=b"{}\n")
    ended = await store.end_batch(
        "batch_c",
        when=BatchStatus.FINALIZING,
        to=BatchStatus.COMPLETED,
        files=[row],
        output_file_id="file-out",
    )
    again = await store.end_batch(
        "batch_c",
        when=BatchStatus.FINALIZING,
        to=BatchStatus.COMPLETED,
        files=[],
    )
    assert (ended, again) == (True, False)
    batch = await store.batch("batch_c")
    assert batch is not None
    assert (batch.status, batch.output_file_id) == ("completed", "file-out")
    assert batch.finalizing_at is not None
    assert batch.completed_at is not None
    assert await store.content("acme", "file-out") == b"{}\n"


async def test_files_and_batches_are_the_tenants_own_and_go_after_the_retention(
    store: BatchStore, database_url: str
):
    info = await store.add_file(
        file_id="file-1", tenant="acme", purpose="batch", filename="in.jsonl", content=b"x\n"
    )
    assert info.bytes == 2
    await store.add_batch(record("batch_d"), items(2))
    # Another tenant sees nothing of them
    assert await store.file("beta", "file-1") is None
    assert await store.content("beta", "file-1") is None
    assert await store.delete_file("beta", "file-1") is False
    assert await store.batch("batch_d", "beta") is None
    assert await store.batches("beta", after=None, limit=10) == ([], False)
    assert await store.file("acme", "file-1") is not None
    # Past the retention, the file and the batch (with its items) are deleted
    assert await store.purge() == 0
    long_ago = utcnow() - timedelta(hours=2)
    async with store._sessions.begin() as session:
        await session.execute(update(FileRecord).values(expires_at=long_ago))
        await session.execute(update(BatchRecord).values(created_at=long_ago))
    # (a batch still running is kept whatever its age)
    assert await store.purge() == 1
    assert await store.batch("batch_d") is not None
    assert await store.move("batch_d", BatchStatus.CANCELLED, [BatchStatus.IN_PROGRESS])
    assert await store.purge() == 1
    assert await store.file("acme", "file-1") is None
    assert await store.batch("batch_d") is None
    assert await store.pending("batch_d", 0, 2) == []


async def test_results_written_together_count_only_the_items_still_pending(store: BatchStore):
    await store.add_batch(record("batch_w", total=4), items(4))
    await store.finish_item("batch_w", "c0", ok=True, result={"first": True})
    # When one write holds an item finished already, two new results and a failure
    finished = [
        ("c0", True, {"again": True}),
        ("c1", True, {"run": 1}),
        ("c2", True, {"run": 2}),
        ("c3", False, {"error": "x"}),
    ]
    assert await store.finish_items("batch_w", finished) == 3
    # Then the first result of c0 stands, and the counts move by the three others
    batch = await store.batch("batch_w")
    assert batch is not None
    assert (batch.completed, batch.failed) == (3, 1)
    found = {c: (s, r) for c, s, r in await store.results("batch_w")}
    assert found["c0"] == ("ok", {"first": True})
    assert found["c3"] == ("error", {"error": "x"})
    assert await store.unfinished("batch_w") is False
