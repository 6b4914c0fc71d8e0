"""A streaming job's generate step: its deltas to the feed and the bus, numbered per run.

The pump between the provider and them never makes the generation wait: a slow or failing
feed or bus merges deltas or drops that side, and the answer is the same either way.
"""

import asyncio
import dataclasses

from handlers import DeltaPump, identified
from handlers.job_stream import BUFFER
from pipeline.errors import BrokerUnavailable
from pipeline.jobs.deltas import START, RunEnded
from pipeline.worker.steps import run_step
from schemas import CompletionDelta, GenerateRequest, JobState, StageEnvelope
from tests.handlers.stage_support import Stages

PERSON = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def request(prompt: str = "tell me a story", **fields: object) -> GenerateRequest:
    return GenerateRequest.model_validate({"model": "flash", "prompt": prompt, **fields})


async def job(stages: Stages, job_id: str, req: GenerateRequest) -> StageEnvelope:
    """A submitted job's envelope as dispatch hands it to its chain: identified."""
    return await identified(await stages.submit(req, job_id), stages.ctx)


async def feed_of(stages: Stages, job_id: str) -> list[CompletionDelta | RunEnded]:
    return list((await stages.deltas.read(job_id, START, limit=1000)).entries)


async def test_a_streaming_job_sends_its_deltas_to_the_feed_and_the_bus_in_order(
    stages: Stages,
) -> None:
    # Given a job that asked for a stream
    envelope = await job(stages, "job-stream", request(stream=True))

    # When its generate step runs
    generated = await run_step("generate", envelope, stages.ctx)

    # Then its deltas went to the bus, numbered from 0 in run 1, and join to the answer
    assert generated.generation is not None
    published = stages.sink.deltas
    assert len(published) >= 2
    assert [(d.run, d.index) for d in published] == [(1, i) for i in range(len(published))]
    assert "".join(d.text for d in published) == generated.generation.text
    assert {(d.job_id, d.correlation_id, d.tenant) for d in published} == {
        ("job-stream", "job-stream", "default")
    }

    # And the feed holds the same deltas, then the run's end marker
    assert await feed_of(stages, "job-stream") == [*published, RunEnded(1, answered=True)]


async def test_a_job_that_did_not_ask_for_a_stream_sends_no_deltas(stages: Stages) -> None:
    # Given a plain job
    envelope = await job(stages, "job-plain", request())

    # When its generate step runs
    generated = await run_step("generate", envelope, stages.ctx)

    # Then it is answered, with nothing on the bus or in the feed before its completion
    assert generated.generation is not None
    assert stages.sink.deltas == []
    assert await feed_of(stages, "job-plain") == []


async def test_a_rerun_of_the_step_is_a_new_run_starting_again_at_index_0(stages: Stages) -> None:
    # Given a streaming job whose generate step ran once (and, say, its worker died after)
    envelope = await job(stages, "job-rerun", request(stream=True))
    await run_step("generate", envelope, stages.ctx)
    first_run = len(stages.sink.deltas)

    # When the step runs again from the same message
    await run_step("generate", envelope, stages.ctx)

    # Then the second run's deltas are run 2, from index 0, and the feed holds both runs
    second = stages.sink.deltas[first_run:]
    assert [(d.run, d.index) for d in second] == [(2, i) for i in range(len(second))]
    ends = [e for e in await feed_of(stages, "job-rerun") if isinstance(e, RunEnded)]
    assert ends == [RunEnded(1, answered=True), RunEnded(2, answered=True)]


async def test_a_failed_generation_ends_its_run_unanswered_and_the_job_fails(
    stages: Stages,
) -> None:
    # Given a streaming job the model refuses
    envelope = await job(
        stages, "job-blocked", request("no [[emulator:block=safety]]", stream=True)
    )

    # When its chain runs
    for step in ("generate", "postprocess", "emit"):
        envelope = await run_step(step, envelope, stages.ctx)

    # Then the run is marked ended without an answer, and the job failed as before
    assert (await feed_of(stages, "job-blocked"))[-1] == RunEnded(1, answered=False)
    assert (await stages.job("job-blocked")).state is JobState.FAILED
    [event] = stages.sink.of("job-blocked")
    assert event.state is JobState.FAILED


async def test_a_structured_answer_is_streamed_whole_as_one_delta(stages: Stages) -> None:
    # Given a streaming job with a response schema
    envelope = await job(
        stages, "job-json", request("a person", stream=True, response_schema=PERSON)
    )

    # When its generate step runs
    generated = await run_step("generate", envelope, stages.ctx)

    # Then its checked answer went out in one delta
    assert generated.generation is not None
    assert [d.text for d in stages.sink.deltas] == [generated.generation.text]


async def test_a_broker_that_refuses_deltas_costs_the_bus_its_deltas_not_the_job(
    stages: Stages,
) -> None:
    # Given a bus that refuses everything
    stages.sink.down = True
    envelope = await job(stages, "job-bus-down", request(stream=True))

    # When the streaming job generates
    generated = await run_step("generate", envelope, stages.ctx)

    # Then it is answered, and the feed still has every delta and the end marker
    assert generated.generation is not None
    entries = await feed_of(stages, "job-bus-down")
    assert entries[-1] == RunEnded(1, answered=True)
    texts = [e.text for e in entries if isinstance(e, CompletionDelta)]
    assert "".join(texts) == generated.generation.text


class SlowSink:
    """A bus that takes each delta only when the test lets it."""

    def __init__(self) -> None:
        self.deltas: list[CompletionDelta] = []
        self.open = asyncio.Event()

    async def publish_completion(self, event: object) -> None:
        raise AssertionError("not used here")

    async def publish_delta(self, delta: CompletionDelta) -> None:
        await self.open.wait()
        self.deltas.append(delta)


async def test_push_never_waits_and_merges_deltas_once_the_buffer_is_full(stages: Stages) -> None:
    # Given a pump whose bus takes nothing until told
    sink = SlowSink()
    envelope = await stages.submit(request(stream=True), "job-slow")
    pump = DeltaPump(dataclasses.replace(stages.ctx, events=sink), envelope, run=1)
    pump.start()

    # When far more deltas than the buffer holds are pushed at once, without awaiting
    texts = [f"{i} " for i in range(BUFFER * 4)]
    for text in texts:
        pump.push(text)

    # Then none was lost: once the bus takes them, they join to the text pushed, in fewer deltas
    sink.open.set()
    await pump.close(answered=True)
    assert "".join(d.text for d in sink.deltas) == "".join(texts)
    assert len(sink.deltas) <= BUFFER + 1
    assert [d.index for d in sink.deltas] == list(range(len(sink.deltas)))
    entries = await feed_of(stages, "job-slow")
    assert entries[-1] == RunEnded(1, answered=True)


async def test_a_failing_bus_is_given_up_for_the_run_after_its_first_refusal(
    stages: Stages,
) -> None:
    # Given a pump whose bus refuses, counting each try
    tries = 0

    async def refuse(delta: CompletionDelta) -> None:
        nonlocal tries
        tries += 1
        raise BrokerUnavailable("the broker did not take the delta in time")

    stages.sink.publish_delta = refuse
    envelope = await stages.submit(request(stream=True), "job-refused")
    pump = DeltaPump(stages.ctx, envelope, run=1)
    pump.start()

    # When three deltas go through it, one at a time
    for text in ("a", "b", "c"):
        pump.push(text)
        await asyncio.sleep(0.01)
    await pump.close(answered=True)

    # Then the bus was tried once; the feed has all three
    assert tries == 1
    texts = [e.text for e in await feed_of(stages, "job-refused") if isinstance(e, CompletionDelta)]
    assert texts == ["a", "b", "c"]
