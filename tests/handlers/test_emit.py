"""Emit, finish and deliver: a job ends once, and its one completion goes out, if late."""

from handlers import CANCELLED, deliver, emit, finish, job_completion
from schemas import ErrorDetail, GenerateRequest, JobState, StageEnvelope
from schemas.webhooks import EndpointCreate
from tests.handlers.stage_support import Stages
from tests.support.envelopes import answer

REQUEST = GenerateRequest(model="flash", prompt="name a colour")
UPSTREAM_DOWN = ErrorDetail(
    type="upstream_unavailable", message="503 from upstream", retryable=True
)


async def answered_job(stages: Stages, job_id: str, **submit: str) -> StageEnvelope:
    """A submitted job's envelope as its chain brings it to emit: with an answer."""
    envelope = await stages.submit(REQUEST, job_id, **submit)
    return envelope.model_copy(update={"response": answer("blue")})


async def test_a_job_ends_once(stages: Stages) -> None:
    # Given a running job
    await stages.submit(REQUEST, "job-once")

    # When it is finished, then finished again another way
    first = await finish(stages.ctx, "job-once", JobState.SUCCEEDED, result=answer("blue"))
    second = await finish(stages.ctx, "job-once", JobState.FAILED, error=UPSTREAM_DOWN)

    # Then only the first finish speaks: one completion, and the record keeps the first end
    assert first is not None
    assert first.state is JobState.SUCCEEDED
    assert second is None
    assert [event.state for event in stages.sink.of("job-once")] == [JobState.SUCCEEDED]
    record = await stages.job("job-once")
    assert record.state is JobState.SUCCEEDED
    assert record.error is None


async def test_an_unknown_job_finishes_as_none_and_publishes_nothing(stages: Stages) -> None:
    assert await finish(stages.ctx, "job-nobody", JobState.FAILED, error=UPSTREAM_DOWN) is None
    assert stages.sink.events == []


async def test_a_succeeded_job_publishes_its_result(stages: Stages) -> None:
    # Given a job whose chain reached emit with an answer
    envelope = await answered_job(stages, "job-ok")

    # When emit runs
    returned = await emit(envelope, stages.ctx)

    # Then one completion.succeeded carries the result, its usage, cost and cache info
    assert returned == envelope
    [event] = stages.sink.of("job-ok")
    assert event.state is JobState.SUCCEEDED
    assert event.result == envelope.response
    assert event.usage == answer().usage
    assert event.cost == answer().cost
    assert event.cache == answer().cache
    assert event.error is None
    record = await stages.job("job-ok")
    assert (record.state, record.stage) == (JobState.SUCCEEDED, "emit")
    # ... and the record and the event agree on when it finished
    assert event.finished_at == record.finished_at
    assert event.correlation_id == record.correlation_id


async def test_a_failed_job_publishes_its_error(stages: Stages) -> None:
    # Given a job whose chain met an error
    envelope = await stages.submit(REQUEST, "job-err")
    envelope = envelope.model_copy(update={"error": UPSTREAM_DOWN})

    # When emit runs
    await emit(envelope, stages.ctx)

    # Then one completion.failed carries the error and no result
    [event] = stages.sink.of("job-err")
    assert event.state is JobState.FAILED
    assert event.error == UPSTREAM_DOWN
    assert event.result is None
    record = await stages.job("job-err")
    assert record.state is JobState.FAILED
    assert record.error == UPSTREAM_DOWN


async def test_a_chain_with_neither_answer_nor_error_fails_the_job(stages: Stages) -> None:
    envelope = await stages.submit(REQUEST, "job-empty")
    await emit(envelope, stages.ctx)
    [event] = stages.sink.of("job-empty")
    assert event.state is JobState.FAILED
    assert event.error is not None
    assert event.error.type == "internal_error"


async def test_a_job_cancelled_first_makes_its_chains_emit_silent(stages: Stages) -> None:
    # Given a job that is cancelled (as the ingress cancels) while its chain still runs
    envelope = await answered_job(stages, "job-cancel")
    cancelled = await finish(stages.ctx, "job-cancel", JobState.CANCELLED, error=CANCELLED)
    assert cancelled is not None

    # When its chain reaches emit with an answer
    await emit(envelope, stages.ctx)

    # Then the only completion is the cancellation's, and the job stays cancelled
    [event] = stages.sink.of("job-cancel")
    assert event.state is JobState.FAILED
    assert event.error is not None
    assert event.error.type == "cancelled"
    record = await stages.job("job-cancel")
    assert record.state is JobState.CANCELLED
    assert record.result is None


async def test_a_completion_the_bus_refuses_stays_in_the_outbox_until_delivered(
    stages: Stages,
) -> None:
    # Given a job, and a bus that refuses what it is given
    envelope = await answered_job(stages, "job-outbox")
    stages.sink.down = True

    # When the job is emitted
    await emit(envelope, stages.ctx)

    # Then its end is recorded, nothing went out, and it waits in the outbox
    record = await stages.job("job-outbox")
    assert record.state is JobState.SUCCEEDED
    assert stages.sink.events == []
    assert [job.id for job in await stages.jobs.undelivered(0, 10)] == ["job-outbox"]

    # When the bus is back and the job is delivered again (as the sweeper does)
    stages.sink.down = False
    assert await deliver(stages.ctx, record) is True

    # Then its one completion goes out, as the record has it, and the outbox is empty
    assert stages.sink.of("job-outbox") == [job_completion(record)]
    assert await stages.jobs.undelivered(0, 10) == []


async def test_a_delivered_completion_leaves_the_outbox_at_once(stages: Stages) -> None:
    await emit(await answered_job(stages, "job-out"), stages.ctx)
    assert len(stages.sink.of("job-out")) == 1
    assert await stages.jobs.undelivered(0, 10) == []


async def test_webhooks_are_scheduled_by_message_id(stages: Stages) -> None:
    # Given a job with a URL of its own, and the tenant's endpoints: one for every event,
    # one for failures only
    hook = "https://hooks.example.com/promptbus"
    envelope = await answered_job(stages, "job-hooks", webhook=hook)
    everything, _ = await stages.webhooks.create(
        "default", EndpointCreate.model_validate({"url": "https://all.example.com/in"})
    )
    await stages.webhooks.create(
        "default",
        EndpointCreate.model_validate(
            {"url": "https://failures.example.com/in", "events": ["completion.failed"]}
        ),
    )

    # When the job succeeds
    await emit(envelope, stages.ctx)

    # Then its own URL and the subscribed endpoint each get one delivery of the completion,
    # named by its message id, so a delivery queued again is the same delivery
    [event] = stages.sink.of("job-hooks")
    by_url = {task.url: task for task in stages.deliveries.tasks}
    assert set(by_url) == {hook, everything.url}
    own = by_url[hook]
    assert own.endpoint_id is None
    assert own.delivery_id == own.message_id == "msg_job-hooks"
    subscribed = by_url[everything.url]
    assert subscribed.endpoint_id == everything.id
    assert subscribed.delivery_id == subscribed.message_id == f"msg_job-hooks.{everything.id}"
    assert all(task.event == event for task in stages.deliveries.tasks)
    assert all(task.attempt == 0 for task in stages.deliveries.tasks)


async def test_a_completion_delivered_again_queues_the_same_deliveries(stages: Stages) -> None:
    # Given a job with a URL whose completion the bus refused once
    envelope = await answered_job(stages, "job-again", webhook="https://hooks.example.com/x")
    stages.sink.down = True
    await emit(envelope, stages.ctx)
    first = list(stages.deliveries.tasks)

    # When it is delivered again
    stages.sink.down = False
    assert await deliver(stages.ctx, await stages.job("job-again"))

    # Then the deliveries queued again are the same ones (same id, same event)
    again = stages.deliveries.tasks[len(first) :]
    assert [t.delivery_id for t in again] == [t.delivery_id for t in first] == ["msg_job-again"]
    assert [t.event for t in again] == [t.event for t in first]
