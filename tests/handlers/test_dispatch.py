"""Dispatch, a job's first stage: each job started once, from its record; a bad event dead.

A real Dispatcher on the memory stage context; the chain starter is the test's own and
records what it is given (in production it publishes the job's Celery chain).
"""

import asyncio
from typing import Any

import orjson
import pytest

from handlers import generate, identified, postprocess
from pipeline.bus.dispatch import Dispatcher, Fate
from pipeline.errors import BrokerUnavailable
from schemas import REQUEST_SCHEMA, GenerateRequest, JobState
from tests.handlers.stage_support import RecordingChains, Stages

REQUEST = {"model": "flash", "prompt": "name a colour"}


def body(job_id: Any, **fields: Any) -> bytes:
    """A raw request event, as a publisher puts it on the bus."""
    return orjson.dumps({"schema": REQUEST_SCHEMA, "job_id": job_id, "request": REQUEST, **fields})


async def test_a_new_jobs_event_is_admitted_recorded_and_started(
    stages: Stages, chains: RecordingChains, dispatcher: Dispatcher
) -> None:
    # Given a request event for a job nobody has seen
    event = body("job-new", tenant="acme", correlation_id="order-7", metadata={"k": "v"})

    # When it is dispatched
    dispatched = await dispatcher.event(event)

    # Then the job is recorded from the event and its chain started, identified and looked up
    assert dispatched.fate is Fate.STARTED
    record = await stages.job("job-new")
    assert (record.state, record.stage) == (JobState.RUNNING, "lookup")
    assert record.tenant == "acme"
    assert record.correlation_id == "order-7"
    assert record.metadata == {"k": "v"}
    assert record.request == GenerateRequest.model_validate(REQUEST)
    [started] = chains.of("job-new")
    assert started.tenant == "acme"
    assert started.request == record.request
    assert started.cache_key is not None
    assert started.cache_key.startswith("v1:acme:")
    assert started.deadline is not None
    assert started.response is None
    # ... and nothing is published until the job ends
    assert stages.sink.events == []


async def test_the_same_event_twice_starts_the_job_once(
    stages: Stages, chains: RecordingChains, dispatcher: Dispatcher
) -> None:
    # Given an event delivered twice, one after the other (a redelivery)
    event = body("job-twice")

    # When both are dispatched
    first = await dispatcher.event(event)
    second = await dispatcher.event(event)

    # Then the first starts the job and the second is a duplicate
    assert (first.fate, second.fate) == (Fate.STARTED, Fate.DUPLICATE)
    assert len(chains.of("job-twice")) == 1


async def test_two_copies_at_once_start_the_job_once(
    stages: Stages, chains: RecordingChains, dispatcher: Dispatcher
) -> None:
    # Given two copies of one event, dispatched at the same time
    event = body("job-race")

    # When both are dispatched concurrently
    fates = await asyncio.gather(dispatcher.event(event), dispatcher.event(event))

    # Then one starts the job; the other waits its turn or is a duplicate
    assert sorted(f.fate for f in fates).count(Fate.STARTED) == 1
    assert {f.fate for f in fates} - {Fate.STARTED} <= {Fate.BUSY, Fate.DUPLICATE}
    assert len(chains.of("job-race")) == 1
    # ... and a copy that waited comes back as a duplicate
    assert (await dispatcher.event(event)).fate is Fate.DUPLICATE
    assert len(chains.of("job-race")) == 1


async def test_a_job_an_ingress_recorded_starts_from_its_record(
    stages: Stages, chains: RecordingChains, dispatcher: Dispatcher
) -> None:
    # Given a job an ingress admitted and recorded, and an event under its id whose
    # request differs (the record is what was admitted)
    admitted = GenerateRequest(model="flash", prompt="the admitted prompt")
    await stages.record(admitted, "job-http")
    event = body("job-http", request={"model": "pro", "prompt": "another prompt"})

    # When the event is dispatched
    dispatched = await dispatcher.event(event)

    # Then the job starts from its record's request, which stays as it was
    assert dispatched.fate is Fate.STARTED
    [started] = chains.of("job-http")
    assert started.request == admitted
    assert (await stages.job("job-http")).request == admitted


async def test_a_cached_answer_ends_the_job_at_dispatch(
    stages: Stages, chains: RecordingChains, dispatcher: Dispatcher
) -> None:
    # Given the answer to the job's request, stored by an earlier sync request
    ctx = stages.ctx
    sync = stages.envelope(GenerateRequest.model_validate(REQUEST))
    stored = await postprocess(await generate(await identified(sync, ctx), ctx), ctx)
    assert stored.response is not None
    assert stored.response.cache.stored

    # When the job's event is dispatched
    dispatched = await dispatcher.event(body("job-cached"))

    # Then the job is answered from the cache: no chain, no second call, one completion
    assert dispatched.fate is Fate.ANSWERED
    assert chains.envelopes == []
    assert await stages.emulator.calls() == 1
    [event] = stages.sink.of("job-cached")
    assert event.state is JobState.SUCCEEDED
    assert event.cache is not None
    assert event.cache.hit is True
    assert event.result is not None
    assert event.result.text == stored.response.text
    record = await stages.job("job-cached")
    assert (record.state, record.stage) == (JobState.SUCCEEDED, "lookup")
    # ... and a copy of the event is a duplicate
    assert (await dispatcher.event(body("job-cached"))).fate is Fate.DUPLICATE


@pytest.mark.parametrize(
    ("raw", "reason", "told"),
    [
        (b"{not json", "invalid JSON", None),
        (b'["a", "list"]', "unknown schema", None),
        (body("job-dead", schema="promptbus.request/v0"), "unknown schema", "job-dead"),
        (body("no spaces allowed", schema="nope"), "unknown schema", None),
        (
            orjson.dumps({"schema": REQUEST_SCHEMA, "job_id": "job-dead"}),
            "invalid event",
            "job-dead",
        ),
        (
            body("job-dead", request={"model": "gemini-9-ultra", "prompt": "hi"}),
            "unknown model",
            "job-dead",
        ),
    ],
    ids=["not-json", "not-an-object", "wrong-schema", "bad-id", "no-request", "unknown-model"],
)
async def test_a_bad_event_is_dead_and_its_publisher_told_once(
    stages: Stages,
    chains: RecordingChains,
    dispatcher: Dispatcher,
    raw: bytes,
    reason: str,
    told: str | None,
) -> None:
    # Given an event that cannot be run
    # When it is dispatched
    dispatched = await dispatcher.event(raw)

    # Then it is dead, saying why, and no job is recorded or started
    assert dispatched.fate is Fate.DEAD
    assert dispatched.reason is not None
    assert reason in dispatched.reason
    assert chains.envelopes == []
    # ... and its publisher hears of it by a completion.failed only where the event named
    # a usable job id
    if told is None:
        assert stages.sink.events == []
        return
    [event] = stages.sink.events
    assert event.job_id == told
    assert event.state is JobState.FAILED
    assert event.error is not None
    assert event.error.type == "invalid_event"
    assert reason in event.error.message
    assert await stages.jobs.get(told) is None

    # And a copy of the bad event is not run either, nor told a second time
    assert (await dispatcher.event(raw)).fate in {Fate.DEAD, Fate.DUPLICATE}
    assert len(stages.sink.events) == 1
    assert chains.envelopes == []


async def test_a_bad_event_does_not_speak_for_an_existing_job(
    stages: Stages, dispatcher: Dispatcher
) -> None:
    # Given a job that exists, and a bad event naming its id
    await stages.record(GenerateRequest.model_validate(REQUEST), "job-taken")
    raw = body("job-taken", schema="promptbus.request/v0")

    # When the event is dispatched, Then it is dead, publishes nothing, and the job is as it was
    assert (await dispatcher.event(raw)).fate is Fate.DEAD
    assert stages.sink.events == []
    record = await stages.job("job-taken")
    assert (record.state, record.stage) == (JobState.QUEUED, None)


@pytest.mark.parametrize(
    "dead",
    [
        body("job-spent", schema="promptbus.request/v0"),
        body("job-spent", request={"model": "gemini-9-ultra", "prompt": "hi"}),
    ],
    ids=["wrong-schema", "unknown-model"],
)
async def test_a_job_id_a_dead_event_used_is_spent(
    stages: Stages, chains: RecordingChains, dispatcher: Dispatcher, dead: bytes
) -> None:
    # Given a bad event whose publisher was told its job id failed
    assert (await dispatcher.event(dead)).fate is Fate.DEAD
    assert len(stages.sink.of("job-spent")) == 1

    # When a valid event under that id follows
    later = await dispatcher.event(body("job-spent"))

    # Then it is a duplicate: no job runs under an id its publisher heard failed
    assert later.fate is Fate.DUPLICATE
    assert chains.envelopes == []
    assert await stages.jobs.get("job-spent") is None
    assert len(stages.sink.of("job-spent")) == 1


async def test_a_chain_that_cannot_start_leaves_the_job_to_start_again(
    stages: Stages, chains: RecordingChains, dispatcher: Dispatcher
) -> None:
    # Given a broker that does not take the job's chain
    chains.failure = BrokerUnavailable("the broker did not take the chain in time")

    # When the event is dispatched, Then the failure is raised (the event is requeued), and
    # the job is recorded but not started
    with pytest.raises(BrokerUnavailable):
        await dispatcher.event(body("job-retry"))
    record = await stages.job("job-retry")
    assert (record.state, record.stage) == (JobState.QUEUED, None)

    # When the requeued event comes back, Then it starts the job: its lease was released
    again = await dispatcher.event(body("job-retry"))
    assert again.fate is Fate.STARTED
    assert len(chains.of("job-retry")) == 1
    assert (await stages.job("job-retry")).stage == "lookup"
