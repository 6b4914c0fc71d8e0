"""Generate and post-process: the model's answer, priced, shaped and stored; a job's wait deferred.

The calls go over HTTP to the emulator through the real LangChain providers.
"""

import time
from typing import Any

import orjson
import pytest

from handlers import StageDeferred, cache_lookup, generate, identified, postprocess
from pipeline.errors import UpstreamUnavailable
from schemas import GenerateRequest, StageEnvelope
from tests.handlers.stage_support import Stages, stage_context
from tests.support.emulator import Emulator

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def request(prompt: str = "name a colour", **fields: Any) -> GenerateRequest:
    return GenerateRequest.model_validate({"model": "flash", "prompt": prompt, **fields})


async def answered(stages: Stages, envelope: StageEnvelope) -> StageEnvelope:
    """The envelope through identify, generate and post-process."""
    ctx = stages.ctx
    return await postprocess(await generate(await identified(envelope, ctx), ctx), ctx)


async def test_an_answer_is_priced_and_stored_and_then_found(stages: Stages) -> None:
    # Given a request the cache has no answer for
    req = request(cache={"ttl": 120})

    # When it is generated and post-processed
    done = await answered(stages, stages.envelope(req))

    # Then the response is the model's answer, priced at the model's list price
    response = done.response
    assert response is not None
    assert response.model == "flash"
    assert (response.provider, response.provider_model) == ("gemini", "gemini-2.5-flash")
    assert "name a colour" in response.text
    assert response.finish_reason == "stop"
    assert response.usage.total_tokens > 0
    spec = stages.ctx.catalog.resolve("flash")
    assert response.cost == spec.cost(response.usage)
    assert response.cost.total_usd > 0
    assert response.routing is not None
    assert response.routing.deployment == "gemini/gemini-2.5-flash"
    assert response.routing.attempts == 1
    # ... stored under its key for the TTL it asked for
    assert response.cache.hit is False
    assert response.cache.stored is True
    assert response.cache.ttl_s == 120
    assert await stages.emulator.calls() == 1

    # And the same request, looked up, is answered from the cache without a call
    again = await cache_lookup(await identified(stages.envelope(req), stages.ctx), stages.ctx)
    assert again.response is not None
    assert again.response.cache.hit is True
    assert again.response.text == response.text
    assert again.response.cost == response.cost
    assert await stages.emulator.calls() == 1


async def test_without_a_ttl_the_answer_is_kept_for_the_default(stages: Stages) -> None:
    done = await answered(stages, stages.envelope(request()))
    assert done.response is not None
    assert done.response.cache.ttl_s == stages.cache.default_ttl_s


async def test_no_store_stores_nothing(stages: Stages) -> None:
    # Given a request that says no_store
    req = request(cache={"no_store": True})

    # When it is answered
    done = await answered(stages, stages.envelope(req))

    # Then it is answered, says it was not stored, and nothing is under its key
    assert done.response is not None
    assert done.response.cache.stored is False
    assert done.cache_key is not None
    assert await stages.cache.get(done.cache_key) is None
    later = await cache_lookup(await identified(stages.envelope(req), stages.ctx), stages.ctx)
    assert later.response is None


async def test_a_structured_request_gets_its_answer_parsed(stages: Stages) -> None:
    # Given a request with a response schema
    req = request("describe a person", response_schema=PERSON)

    # When it is answered
    done = await answered(stages, stages.envelope(req))

    # Then the response holds the parsed JSON, valid for the schema, and the text it came from
    response = done.response
    assert response is not None
    assert isinstance(response.json_, dict)
    assert isinstance(response.json_["name"], str)
    assert isinstance(response.json_["age"], int)
    assert orjson.loads(response.text) == response.json_


async def test_in_a_job_a_503_defers_the_step_instead_of_waiting(stages: Stages) -> None:
    # Given a job (its envelope has a job id and a deadline) whose model answers 503
    envelope = await stages.submit(request("[[emulator:status=503]] name a colour"), "job-503")
    envelope = await identified(envelope, stages.ctx)
    assert envelope.deadline is not None

    # When it is generated
    started = time.monotonic()
    with pytest.raises(StageDeferred) as deferred:
        await generate(envelope, stages.ctx)
    elapsed_s = time.monotonic() - started

    # Then the step is deferred at once (Celery waits, not the worker), after one call
    assert await stages.emulator.calls() == 1
    assert elapsed_s < 2.0
    policy = stages.ctx.router.policy
    assert 0 <= deferred.value.delay_s <= policy.max_backoff_s
    # ... carrying the routing state, so the budget and the deadline hold across retries
    routing = deferred.value.envelope.routing
    assert routing is not None
    assert routing.attempts == 1
    assert routing.tried == ("gemini/gemini-2.5-flash",)
    assert routing.deadline == envelope.deadline
    assert deferred.value.envelope.job_id == "job-503"
    assert deferred.value.envelope.cache_key == envelope.cache_key


async def run_until_it_fails(
    stages: Stages, envelope: StageEnvelope, bound: int
) -> tuple[int, UpstreamUnavailable]:
    """Run generate again with each deferred envelope, as Celery's retries do, until it fails."""
    for deferrals in range(bound):
        try:
            await generate(envelope, stages.ctx)
        except StageDeferred as deferred:
            envelope = deferred.envelope
        except UpstreamUnavailable as failed:
            return deferrals, failed
        else:
            raise AssertionError("answered, though the model answers 503")
    raise AssertionError(f"still deferred after {bound} runs")


async def test_a_jobs_deferrals_spend_one_budget_then_fail(stages: Stages) -> None:
    # Given a job whose model answers 503 every time
    envelope = await stages.submit(request("[[emulator:status=503]] name a colour"), "job-down")
    envelope = await identified(envelope, stages.ctx)
    budget = stages.ctx.router.policy.max_attempts

    # When each deferred step is run again with the envelope it carried
    deferrals, failed = await run_until_it_fails(stages, envelope, bound=budget * 2)

    # Then the whole job made exactly its budget of calls, and its error says so
    assert deferrals == budget - 1
    assert await stages.emulator.calls() == budget
    assert failed.attempts == budget
    assert failed.tried == ("gemini/gemini-2.5-flash",) * budget


async def test_a_sync_request_waits_in_process_and_then_fails(emulator: Emulator) -> None:
    # Given a sync request (no job) whose model answers 503, and short backoffs
    async with stage_context(emulator, retry_base_s=0.01, retry_max_backoff_s=0.02) as stages:
        envelope = await identified(
            stages.envelope(request("[[emulator:status=503]] hi")), stages.ctx
        )

        # When it is generated, Then it retries in process, and fails once the budget is spent
        with pytest.raises(UpstreamUnavailable) as failed:
            await generate(envelope, stages.ctx)
        budget = stages.ctx.router.policy.max_attempts
        assert failed.value.attempts == budget
        assert await emulator.calls() == budget


async def test_generate_needs_the_key_and_post_process_the_generation(stages: Stages) -> None:
    envelope = stages.envelope(request())
    with pytest.raises(ValueError, match="identify it first"):
        await generate(envelope, stages.ctx)
    with pytest.raises(ValueError, match="run generate first"):
        await postprocess(await identified(envelope, stages.ctx), stages.ctx)
    assert await stages.emulator.calls() == 0
