"""Streaming jobs end to end, on each broker: deltas on the job's SSE feed and on the bus.

A job submitted with `"stream": true` has its text deltas sent as they come: `delta` events
on `GET /v1/jobs/{id}/events` between its state events, and `completion.delta` events on
the completions exchange before its one final completion, which is unchanged.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest
import pytest_asyncio

from schemas.export import JSON_DIR
from tests.support.bus import BROKERS
from tests.support.bus_tap import BusTap, Delivery
from tests.support.job_env import JobEnv, job_env
from tests.support.sse import Event, events
from tests.support.unique import new_id

pytestmark = pytest.mark.asyncio(loop_scope="module")

# How long to keep listening for an event that must not come, after the one that must.
QUIET_S = 0.5
DELTA_SCHEMA = json.loads((JSON_DIR / "completion_delta.json").read_text())


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BROKERS)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[JobEnv]:
    """One gateway with its embedded worker per broker, shared by this module's tests."""
    async with job_env(request.param) as running:
        yield running


def streamed(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "flash", "prompt": prompt, "stream": True, **extra}


async def read_events(env: JobEnv, job_id: str) -> list[Event]:
    """The job's whole event stream, as a client reads it (the server ends it)."""
    async with env.session.get(f"{env.gateway.url}/v1/jobs/{job_id}/events") as resp:
        assert resp.status == 200
        async with asyncio.timeout(20):
            return [event async for event in events(resp)]


def joined(deltas: list[Event] | list[Delivery]) -> str:
    return "".join((d.data if isinstance(d, Event) else d.body)["text"] for d in deltas)


async def test_the_event_stream_has_the_deltas_between_the_states_then_the_final_state(
    env: JobEnv,
) -> None:
    # Given a streaming job that takes a moment upstream, its event stream opened at once
    accepted = await env.submit(streamed(f"{new_id('sse-stream')} tell me [[emulator:delay=300]]"))
    assert accepted.status == 202, accepted.body
    job_id = accepted.body["id"]

    # When the stream is read to its end
    seen = await read_events(env, job_id)

    # Then it runs first, then its deltas, numbered from 0 in run 1, then the final state alone
    names = [e.name for e in seen]
    assert names[0] in ("queued", "running"), names
    assert names[-1] == "succeeded", names
    deltas = [e for e in seen if e.name == "delta"]
    assert len(deltas) >= 2, names
    first_delta = names.index("delta")
    assert "running" in names[:first_delta], names
    assert set(names[first_delta : names.index("succeeded")]) == {"delta"}, names
    assert [(d.data["run"], d.data["index"]) for d in deltas] == [
        (1, i) for i in range(len(deltas))
    ]
    for delta in deltas:
        jsonschema.validate(delta.data, DELTA_SCHEMA)
        assert delta.data["job_id"] == job_id

    # And the deltas join to the final result's text
    assert joined(deltas) == seen[-1].data["result"]["text"]


async def test_a_reader_who_comes_late_still_gets_every_delta(env: JobEnv) -> None:
    # Given a streaming job that has finished
    accepted = await env.submit(streamed(f"{new_id('late')} a long story"))
    job_id = accepted.body["id"]
    done = await env.wait_job(job_id)
    assert done.body["state"] == "succeeded", done.body

    # When its event stream is read only now
    seen = await read_events(env, job_id)

    # Then it has every delta from the first, then the final state
    assert [e.name for e in seen][-1] == "succeeded"
    deltas = [e for e in seen if e.name == "delta"]
    assert [d.data["index"] for d in deltas] == list(range(len(deltas)))
    assert joined(deltas) == done.body["result"]["text"]


async def test_deltas_go_on_the_bus_before_the_completion_and_only_to_those_bound_to_them(
    env: JobEnv,
) -> None:
    # Given a consumer of everything on the completions exchange, and one of successes only
    async with (
        BusTap.completions(env.bus, "completion.*") as everything,
        BusTap.completions(env.bus, "completion.succeeded") as successes,
    ):
        # When a streaming job runs
        accepted = await env.submit(
            streamed(f"{new_id('bus-stream')} go"), {"X-Correlation-Id": "corr-stream"}
        )
        job_id = accepted.body["id"]
        final = await everything.wait_for(job_id=job_id, state="succeeded")
        await successes.wait_for(job_id=job_id)
        await asyncio.sleep(QUIET_S)

        # Then its deltas came first, as `completion.delta` events valid against their schema
        arrived = everything.for_job(job_id)
        assert [d.routing_key for d in arrived][-1] == "completion.succeeded"
        deltas = arrived[:-1]
        assert len(deltas) >= 2
        for delivery in deltas:
            assert delivery.routing_key == "completion.delta"
            jsonschema.validate(delivery.body, DELTA_SCHEMA)
            assert delivery.body["correlation_id"] == "corr-stream"
            assert delivery.headers["schema"] == "promptbus.completion.delta/v1"
        assert [d.body["index"] for d in deltas] == list(range(len(deltas)))
        assert joined(deltas) == final.body["result"]["text"]

        # And the final completion is the one it always was; successes heard of nothing else
        assert final.body["schema"] == "promptbus.completion/v1"
        assert [d.routing_key for d in successes.for_job(job_id)] == ["completion.succeeded"]


async def test_a_job_that_did_not_ask_for_a_stream_has_no_deltas(env: JobEnv) -> None:
    # Given a consumer of deltas alone, and one of final completions (the default binding)
    async with BusTap.deltas(env.bus) as deltas, BusTap.completions(env.bus) as finals:
        # When a plain job runs, and a streaming one after it as a control
        plain = (await env.submit({"model": "flash", "prompt": new_id("plain")})).body["id"]
        control = (await env.submit(streamed(new_id("control")))).body["id"]
        await finals.wait_for(job_id=plain)
        await finals.wait_for(job_id=control)
        await deltas.wait_for(job_id=control)
        await asyncio.sleep(QUIET_S)

        # Then the plain job published no delta, and its event stream has none
        assert deltas.for_job(plain) == []
        assert [e.name for e in await read_events(env, plain)] == ["succeeded"]

        # And the consumer of final completions got one event per job, deltas or not
        assert len(finals.for_job(plain)) == 1
        assert len(finals.for_job(control)) == 1


async def test_a_streaming_job_answered_from_the_cache_has_no_deltas(env: JobEnv) -> None:
    # Given an answer already in the cache
    prompt = f"{new_id('cached-stream')} remembered"
    warm = await env.gateway.generate({"model": "flash", "prompt": prompt})
    assert warm.status == 200, warm.body

    async with BusTap.deltas(env.bus) as deltas:
        # When a streaming job asks the same
        accepted = await env.submit(streamed(prompt))
        job_id = accepted.body["id"]
        done = await env.wait_job(job_id)
        await asyncio.sleep(QUIET_S)

        # Then it ends at dispatch with the cached text, and without a single delta
        assert done.body["result"]["cache"]["hit"] is True
        assert deltas.for_job(job_id) == []
        seen = await read_events(env, job_id)
        assert [e.name for e in seen] == ["succeeded"]
        assert seen[0].data["result"]["text"] == warm.body["text"]


async def test_a_reader_who_reads_nothing_holds_up_no_job(env: JobEnv) -> None:
    # Given a streaming job whose event stream is open but never read
    accepted = await env.submit(streamed(f"{new_id('stalled-reader')} [[emulator:delay=200]]"))
    job_id = accepted.body["id"]
    async with env.session.get(f"{env.gateway.url}/v1/jobs/{job_id}/events") as stalled:
        assert stalled.status == 200

        # When the job runs meanwhile
        done = await env.wait_job(job_id, 10)

        # Then it finishes as soon as it would have anyway
        assert done.body["state"] == "succeeded", done.body

        # And the stalled reader, reading at last, finds everything it missed
        seen = [event async for event in events(stalled)]
    assert seen[-1].name == "succeeded"
    assert joined([e for e in seen if e.name == "delta"]) == done.body["result"]["text"]
