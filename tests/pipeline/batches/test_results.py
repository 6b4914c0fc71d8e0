"""A chunk's results written together: each once, in fewer transactions than items."""

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from pipeline.batches import BatchStore
from pipeline.batches.results import Finished, ResultWriter
from pipeline.db import create_engine, upgrade
from tests.pipeline.batches.test_store import items, record
from tests.support.settings import settings_for_test


class CountingStore(BatchStore):
    """The real store, counting its writes of results."""

    writes: list[int]

    async def finish_items(self, batch_id: str, results: Sequence[Finished]) -> int:
        self.writes.append(len(results))
        await asyncio.sleep(0.01)  # a commit that takes a while, as under a busy database
        return await super().finish_items(batch_id, results)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[CountingStore]:
    engine = create_engine(settings_for_test(database_url=database_url))
    await upgrade(engine)
    counting = CountingStore(engine, retention_s=3600)
    counting.writes = []
    yield counting
    await engine.dispose()


async def test_results_finishing_during_a_write_go_in_the_next_one(store: CountingStore):
    await store.add_batch(record("batch_r", total=20), items(20))
    told: list[int] = []

    async def on_kept() -> None:
        told.append(1)

    writer = ResultWriter(store, "batch_r", on_kept)
    # When twenty results come at once, and one of them twice
    results: list[Finished] = [(f"c{i}", True, {"n": i}) for i in range(20)]
    await asyncio.gather(*(writer.write(f) for f in [*results, results[3]]))
    # Then each is written once, by fewer writes than results, and progress is told per write
    batch = await store.batch("batch_r")
    assert batch is not None
    assert (batch.completed, batch.failed) == (20, 0)
    assert sum(store.writes) == 21
    assert len(store.writes) < 21
    assert len(told) <= len(store.writes)
    assert await store.unfinished("batch_r") is False


async def test_each_write_returns_only_once_its_result_is_stored(store: CountingStore):
    await store.add_batch(record("batch_s", total=5), items(5))
    writer = ResultWriter(store, "batch_s", None)

    async def write_then_read(i: int) -> str:
        await writer.write((f"c{i}", True, {"n": i}))
        pending = {item.custom_id for item in await store.pending("batch_s", 0, 5)}
        return "stored" if f"c{i}" not in pending else "pending"

    assert await asyncio.gather(*(write_then_read(i) for i in range(5))) == ["stored"] * 5
