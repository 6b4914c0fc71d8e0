"""The sweeper: a job that stopped moving is re-driven, then given up; a lost completion resent.

The memory job store's clock is moved on by hand instead of waiting for a stall.
"""

import asyncio

import orjson
import pytest

from handlers import emit
from pipeline.bus.dispatch import Dispatcher, Fate
from pipeline.jobs.memory import MemoryJobStore
from pipeline.worker.sweeper import MAX_REDRIVES, OUTBOX_GRACE_S, Sweeper
from schemas import REQUEST_SCHEMA, GenerateRequest, JobState
from tests.handlers.stage_support import RecordingChains, Stages, stage_context
from tests.support.emulator import Emulator
from tests.support.envelopes import answer

STALL_S = 60.0
REQUEST = GenerateRequest(model="flash", prompt="name a colour")


def body(job_id: str) -> bytes:
    return orjson.dumps(
        {
            "schema": REQUEST_SCHEMA,
            "job_id": job_id,
            "request": REQUEST.model_dump(exclude_none=True),
        }
    )


@pytest.fixture
def sweeper(stages: Stages, dispatcher: Dispatcher) -> Sweeper:
    return Sweeper(stages.ctx, dispatcher, stall_s=STALL_S)


async def started(dispatcher: Dispatcher, job_id: str) -> None:
    """A job dispatched and its chain started (whose task is then lost)."""
    assert (await dispatcher.event(body(job_id))).fate is Fate.STARTED


async def test_a_moving_job_is_left_alone(
    stages: Stages, chains: RecordingChains, dispatcher: Dispatcher, sweeper: Sweeper
) -> None:
    # Given a job started a moment under the stall bound ago
    await started(dispatcher, "job-fresh")
    stages.clock.advance(STALL_S - 1)

    # When the sweeper sweeps, Then it re-drives nothing
    assert await sweeper.sweep() == (0, 0)
    assert len(chains.of("job-fresh")) == 1


async def test_a_stalled_job_is_re_driven_once_per_stall(
    stages: Stages, chains: RecordingChains, dispatcher: Dispatcher, sweeper: Sweeper
) -> None:
    # Given a job whose chain was lost after it started, unchanged past the stall bound
    await started(dispatcher, "job-stalled")
    before = await stages.job("job-stalled")
    stages.clock.advance(STALL_S + 1)

    # When the sweeper sweeps
    assert await sweeper.sweep() == (1, 0)

    # Then the job's chain is started again, from its record, and the record is touched
    [_, again] = chains.of("job-stalled")
    assert again.request == before.request
    assert again.cache_key is not None
    after = await stages.job("job-stalled")
    assert after.updated_at > before.updated_at
    assert (after.state, after.stage) == (JobState.RUNNING, "lookup")

    # And sweeping again within the next bound re-drives it no more
    stages.clock.advance(STALL_S - 1)
    assert await sweeper.sweep() == (0, 0)
    assert len(chains.of("job-stalled")) == 2


class RoundTripJobStore(MemoryJobStore):
    """A memory job store whose claims take a round trip, as a shared store's do."""

    async def claim(self, kind: str, key: str, ttl_s: float) -> bool:
        await asyncio.sleep(0)  # another worker's sweep runs meanwhile
        return await super().claim(kind, key, ttl_s)


async def test_two_sweepers_re_drive_each_stall_once(emulator: Emulator) -> None:
    # Given two workers' sweepers on one shared job store, and a job whose chain is lost
    async with stage_context(emulator, job_store=RoundTripJobStore) as stages:
        chains = RecordingChains()
        sweepers = [
            Sweeper(stages.ctx, Dispatcher(stages.ctx, chains), stall_s=STALL_S) for _ in "ab"
        ]
        await started(Dispatcher(stages.ctx, chains), "job-shared")

        # When it stalls, and both sweep at once
        stages.clock.advance(STALL_S + 1)
        swept = await asyncio.gather(*(sweeper.sweep() for sweeper in sweepers))

        # Then exactly one of them re-drove it
        assert sorted(swept) == [(0, 0), (1, 0)]
        assert len(chains.of("job-shared")) == 2

        # And stall after stall, the job gets its MAX_REDRIVES re-drives, no fewer, then fails
        for _ in range(MAX_REDRIVES):
            stages.clock.advance(STALL_S + 1)
            await asyncio.gather(*(sweeper.sweep() for sweeper in sweepers))
        assert len(chains.of("job-shared")) == 1 + MAX_REDRIVES
        assert (await stages.job("job-shared")).state is JobState.FAILED
        assert len(stages.sink.of("job-shared")) == 1


async def test_a_job_that_never_moves_is_failed_as_stalled(
    stages: Stages, chains: RecordingChains, dispatcher: Dispatcher, sweeper: Sweeper
) -> None:
    # Given a job whose chain is lost on every re-drive
    await started(dispatcher, "job-stuck")

    # When it stalls MAX_REDRIVES times, and once more
    for _ in range(MAX_REDRIVES):
        stages.clock.advance(STALL_S + 1)
        assert await sweeper.sweep() == (1, 0)
    assert stages.sink.events == []
    stages.clock.advance(STALL_S + 1)
    assert await sweeper.sweep() == (1, 0)

    # Then it was re-driven MAX_REDRIVES times, then failed as job_stalled, and its
    # publisher told so in one completion
    assert len(chains.of("job-stuck")) == 1 + MAX_REDRIVES
    record = await stages.job("job-stuck")
    assert record.state is JobState.FAILED
    assert record.error is not None
    assert record.error.type == "job_stalled"
    assert "lookup" in record.error.message
    [event] = stages.sink.of("job-stuck")
    assert event.state is JobState.FAILED
    assert event.error == record.error

    # And a finished job is never swept again
    stages.clock.advance(STALL_S + 1)
    assert await sweeper.sweep() == (0, 0)
    assert len(stages.sink.of("job-stuck")) == 1


async def test_a_job_whose_chain_never_started_is_started_by_the_sweeper(
    stages: Stages, chains: RecordingChains, sweeper: Sweeper
) -> None:
    # Given a job an ingress recorded whose event never reached a bridge
    await stages.record(REQUEST, "job-orphan")
    stages.clock.advance(STALL_S + 1)

    # When the sweeper sweeps, Then it starts the job's chain and records it started
    assert await sweeper.sweep() == (1, 0)
    assert len(chains.of("job-orphan")) == 1
    record = await stages.job("job-orphan")
    assert (record.state, record.stage) == (JobState.RUNNING, "lookup")


async def test_a_completion_the_bus_refused_is_delivered_after_the_grace(
    stages: Stages, sweeper: Sweeper
) -> None:
    # Given a job that ended while the bus refused its completion
    envelope = await stages.submit(REQUEST, "job-late", webhook="https://hooks.example.com/in")
    stages.sink.down = True
    await emit(envelope.model_copy(update={"response": answer("blue")}), stages.ctx)
    stages.sink.down = False
    assert stages.sink.events == []

    # When the sweeper sweeps before the grace has passed, Then it leaves it to the first try
    stages.clock.advance(OUTBOX_GRACE_S / 2)
    assert await sweeper.sweep() == (0, 0)
    assert stages.sink.events == []

    # When it sweeps after the grace
    stages.clock.advance(OUTBOX_GRACE_S)
    assert await sweeper.sweep() == (0, 1)

    # Then the completion goes out once, its webhook is queued again under the same id, and
    # the outbox is empty
    [event] = stages.sink.of("job-late")
    assert event.state is JobState.SUCCEEDED
    assert [t.delivery_id for t in stages.deliveries.tasks] == ["msg_job-late"] * 2
    assert await stages.jobs.undelivered(0, 10) == []
    stages.clock.advance(OUTBOX_GRACE_S * 3)
    assert await sweeper.sweep() == (0, 0)
    assert len(stages.sink.of("job-late")) == 1


async def test_a_redelivery_the_bus_refuses_again_is_tried_again_later(
    stages: Stages, sweeper: Sweeper
) -> None:
    # Given a job whose completion the bus refused, and still refuses after the grace
    envelope = await stages.submit(REQUEST, "job-later")
    stages.sink.down = True
    await emit(envelope.model_copy(update={"response": answer()}), stages.ctx)
    stages.clock.advance(OUTBOX_GRACE_S + 1)
    assert await sweeper.sweep() == (0, 0)
    assert [job.id for job in await stages.jobs.undelivered(0, 10)] == ["job-later"]

    # When the bus is back and the claim on that attempt has lapsed
    stages.sink.down = False
    stages.clock.advance(OUTBOX_GRACE_S * 2 + 1)

    # Then the next sweep delivers it
    assert await sweeper.sweep() == (0, 1)
    assert len(stages.sink.of("job-later")) == 1
    assert await stages.jobs.undelivered(0, 10) == []
