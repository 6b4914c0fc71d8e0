"""The job API end to end, on each broker: submit, long-poll, SSE, cancel, idempotency, list."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.support.bus import BROKERS
from tests.support.bus_tap import BusTap
from tests.support.job_env import JobEnv, job_env
from tests.support.task_traces import traced_tasks
from tests.support.unique import new_id

pytestmark = pytest.mark.asyncio(loop_scope="module")

# How long to keep listening for an event that must not come, after the one that must.
QUIET_S = 0.5
STATE_ORDER = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2, "cancelled": 2}
# The chain of Celery tasks after dispatch (which identifies the request and looks it up).
STEPS = ("generate", "postprocess", "emit")


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BROKERS)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[JobEnv]:
    """One gateway with its embedded worker per broker, shared by this module's tests."""
    async with job_env(request.param) as running:
        yield running


def flash(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "flash", "prompt": prompt, **extra}


def parse_sse(raw: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, decoded data) for each event of a text/event-stream body."""
    events = []
    for block in raw.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def wait_for_stage(env: JobEnv, job_id: str, stage: str, timeout_s: float = 10.0) -> None:
    """Poll the job, with a deadline, until it is running `stage`."""
    deadline = time.monotonic() + timeout_s
    while True:
        reply = await env.get(f"/v1/jobs/{job_id}")
        if reply.body.get("stage") == stage and reply.body["state"] == "running":
            return
        assert time.monotonic() < deadline, f"job never ran {stage}: {reply.body}"
        await asyncio.sleep(0.02)


async def test_a_job_completes_on_the_bus_with_the_sync_paths_answer(env: JobEnv) -> None:
    # Given a consumer of completion events, bound before anything is submitted
    prompt = f"{new_id('bus-vs-sync')} say something"
    async with BusTap.completions(env.bus) as completions:
        calls_before = await env.emulator.calls()

        # When a job is submitted
        accepted = await env.submit(flash(prompt), {"X-Correlation-Id": "corr-bus-vs-sync"})

        # Then it is accepted, with where to find it
        assert accepted.status == 202, accepted.body
        job_id = accepted.body["id"]
        assert accepted.header("Location") == f"/v1/jobs/{job_id}"
        assert accepted.body["correlation_id"] == "corr-bus-vs-sync"

        # And the independent consumer receives its success
        delivery = await completions.wait_for(job_id=job_id)
        event = delivery.body
        assert delivery.routing_key == "completion.succeeded"
        assert event["schema"] == "promptbus.completion/v1"
        assert event["state"] == "succeeded"
        assert event["correlation_id"] == "corr-bus-vs-sync"
        assert event["cache"]["hit"] is False
        assert event["usage"] == event["result"]["usage"]
        assert event["cost"] == event["result"]["cost"]

        # And the long-poll returns the same result
        done = await env.wait_job(job_id, 10)
        assert done.status == 200
        assert done.body["state"] == "succeeded"
        assert done.body["result"] == event["result"]

        # And the sync path, asked afresh, gives the same text for the same request
        fresh = await env.gateway.generate(flash(prompt, cache={"no_cache": True}))
        assert fresh.status == 200, fresh.body
        assert fresh.header("X-Cache") == "MISS"
        assert fresh.body["text"] == event["result"]["text"]

        # And there was one completion event, and one upstream call for the job
        await asyncio.sleep(QUIET_S)
        assert len(completions.for_job(job_id)) == 1
        assert await env.emulator.calls() - calls_before == 2  # the job's and the sync call


async def test_long_poll_returns_as_soon_as_the_job_finishes(env: JobEnv) -> None:
    # Given a job that takes half a second upstream
    accepted = await env.submit(flash(f"{new_id('long-poll')} [[emulator:delay=500]]"))
    assert accepted.status == 202, accepted.body
    assert accepted.body["state"] in ("queued", "running")

    # When a client long-polls with a 10 s bound
    started = time.monotonic()
    reply = await env.get(f"/v1/jobs/{accepted.body['id']}?wait=10")
    waited = time.monotonic() - started

    # Then the answer is the finished job, before the bound ran out
    assert reply.status == 200
    assert reply.body["state"] == "succeeded"
    assert reply.body["result"]["text"]
    assert waited < 10


async def test_job_status_refuses_unknown_jobs_and_bad_waits(env: JobEnv) -> None:
    # Given a job id nobody submitted
    unknown = new_id("job_unknown")

    # When it is asked for, with and without a wait
    plain = await env.get(f"/v1/jobs/{unknown}")
    started = time.monotonic()
    waited = await env.get(f"/v1/jobs/{unknown}?wait=5")
    waited_s = time.monotonic() - started

    # Then both are 404, and the wait does not hold an unknown job
    for reply in (plain, waited):
        assert reply.status == 404
        assert reply.body["error"]["type"] == "job_not_found"
    assert waited_s < 5

    # And a wait past 60 s or not a number is refused
    accepted = await env.submit(flash(new_id("bad-wait")))
    for bad in ("61", "abc", "-1"):
        reply = await env.get(f"/v1/jobs/{accepted.body['id']}?wait={bad}")
        assert reply.status == 422, bad
        assert reply.body["error"]["type"] == "validation_error"
        assert reply.body["error"]["field"] == "wait"


async def test_event_stream_sends_states_in_order_and_ends_by_itself(env: JobEnv) -> None:
    # Given a job that takes a moment upstream
    accepted = await env.submit(flash(f"{new_id('sse')} [[emulator:delay=300]]"))
    job_id = accepted.body["id"]

    # When its event stream is read to the end
    async with env.session.get(f"{env.gateway.url}/v1/jobs/{job_id}/events") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async with asyncio.timeout(20):
            raw = (await resp.read()).decode()  # returns only once the server ends the stream

    # Then it starts queued or running, ends succeeded, and never goes back
    events = parse_sse(raw)
    states = [name for name, _ in events]
    assert states[0] in ("queued", "running"), states
    assert states[-1] == "succeeded", states
    assert [STATE_ORDER[s] for s in states] == sorted(STATE_ORDER[s] for s in states)
    assert all(data["id"] == job_id and data["state"] == name for name, data in events)
    assert events[-1][1]["result"]["text"]

    # And an unknown job has no stream
    missing = await env.get(f"/v1/jobs/{new_id('job_unknown')}/events")
    assert missing.status == 404


async def test_cancelling_a_running_job_reports_cancelled_once_and_never_succeeds(
    env: JobEnv,
) -> None:
    # Given a job that is three seconds into its upstream call
    with traced_tasks() as tasks:
        async with BusTap.completions(env.bus) as completions:
            accepted = await env.submit(flash(f"{new_id('cancel')} [[emulator:delay=3000]]"))
            job_id = accepted.body["id"]
            await wait_for_stage(env, job_id, "generate")

            # When it is cancelled
            cancelled = await env.delete(f"/v1/jobs/{job_id}")

            # Then the job is cancelled, and a failed completion says so
            assert cancelled.status == 200, cancelled.body
            assert cancelled.body["state"] == "cancelled"
            delivery = await completions.wait_for(job_id=job_id)
            assert delivery.routing_key == "completion.failed"
            assert delivery.body["state"] == "failed"
            assert delivery.body["error"]["type"] == "cancelled"

            # And once the upstream answer came back and the chain ran out, nothing more came
            await tasks.wait_finished(f"{job_id}.emit", timeout_s=15)
            await asyncio.sleep(QUIET_S)
            assert [d.state for d in completions.for_job(job_id)] == ["failed"]

    # And the job stays cancelled, and cannot be cancelled again
    status = await env.get(f"/v1/jobs/{job_id}")
    assert status.body["state"] == "cancelled"
    assert "result" not in status.body
    again = await env.delete(f"/v1/jobs/{job_id}")
    assert again.status == 409
    assert again.body["error"]["type"] == "conflict"
    unknown = await env.delete(f"/v1/jobs/{new_id('job_unknown')}")
    assert unknown.status == 404


async def test_idempotency_key_replays_the_job_and_refuses_another_body(env: JobEnv) -> None:
    # Given a tap on request events and one on completions
    body = flash(f"{new_id('idempotent')} once only")
    key = {"Idempotency-Key": new_id("key")}
    async with BusTap.requests(env.bus) as requests, BusTap.completions(env.bus) as completions:
        calls_before = await env.emulator.calls()

        # When the same body is submitted twice under the same key
        first = await env.submit(body, key)
        second = await env.submit(body, key)

        # Then both name the same job
        assert (first.status, second.status) == (202, 202), (first.body, second.body)
        job_id = first.body["id"]
        assert second.body["id"] == job_id
        assert second.header("Location") == f"/v1/jobs/{job_id}"

        # And it ran once: one request event, one completion, one upstream call
        await completions.wait_for(job_id=job_id)
        await asyncio.sleep(QUIET_S)
        assert len(requests.for_job(job_id)) == 1
        assert len(completions.for_job(job_id)) == 1
        assert await env.emulator.calls() - calls_before == 1

    # And another body under that key is a conflict
    other = await env.submit(flash(f"{new_id('idempotent')} something else"), key)
    assert other.status == 409
    assert other.body["error"]["type"] == "conflict"


async def test_a_cached_answer_finishes_the_job_at_dispatch_without_tasks(env: JobEnv) -> None:
    # Given an answer already in the cache from the sync path
    prompt = f"{new_id('cached')} remembered"
    warm = await env.gateway.generate(flash(prompt))
    assert warm.status == 200, warm.body

    with traced_tasks() as tasks:
        async with BusTap.requests(env.bus) as requests, BusTap.completions(env.bus) as completions:
            calls_before = await env.emulator.calls()

            # When a job asks the same
            hit = await env.submit(flash(prompt))
            assert hit.status == 202, hit.body
            hit_id = hit.body["id"]

            # Then it succeeds from the cache, at the lookup stage its dispatch runs
            delivery = await completions.wait_for(job_id=hit_id)
            assert delivery.body["state"] == "succeeded"
            assert delivery.body["cache"]["hit"] is True
            assert delivery.body["result"]["text"] == warm.body["text"]
            done = await env.wait_job(hit_id)
            assert done.body["state"] == "succeeded"
            assert done.body["stage"] == "lookup"
            assert done.body["result"]["cache"]["hit"] is True

            # When, as a control, a job that misses the cache runs to its end afterwards
            miss = await env.submit(flash(f"{new_id('uncached')} new"))
            miss_id = miss.body["id"]
            await tasks.wait_finished(f"{miss_id}.emit")
            await completions.wait_for(job_id=miss_id)

            # Then the miss ran its chain of tasks, while the hit ran none; both went on the
            # bus once, as request events
            assert sorted(tasks.started_for(miss_id)) == sorted(f"{miss_id}.{s}" for s in STEPS)
            assert tasks.started_for(hit_id) == []
            assert len(requests.for_job(hit_id)) == 1
            assert len(requests.for_job(miss_id)) == 1
            assert await env.emulator.calls() - calls_before == 1  # the miss only


async def test_job_list_filters_by_state_and_pages_newest_first(env: JobEnv) -> None:
    # Given three finished jobs, the middle one failed
    ids = []
    for prompt in ("first", "second [[emulator:block=safety]]", "third"):
        accepted = await env.submit(flash(f"{new_id('list')} {prompt}"))
        ids.append(accepted.body["id"])
        finished = await env.wait_job(accepted.body["id"])
        assert finished.body["state"] in ("succeeded", "failed"), finished.body
    first, second, third = ids

    # When the newest two are listed
    page = await env.get("/v1/jobs?limit=2")

    # Then they come newest first, with a cursor to the rest
    assert page.status == 200
    assert [job["id"] for job in page.body["data"]] == [third, second]
    assert page.body["next_cursor"] == second
    rest = await env.get(f"/v1/jobs?limit=2&cursor={page.body['next_cursor']}")
    assert rest.body["data"][0]["id"] == first

    # And a state filter keeps to that state
    succeeded = await env.get("/v1/jobs?state=succeeded&limit=2")
    assert [job["id"] for job in succeeded.body["data"]] == [third, first]
    assert {job["state"] for job in succeeded.body["data"]} == {"succeeded"}
    failed = await env.get("/v1/jobs?state=failed&limit=1")
    assert [job["id"] for job in failed.body["data"]] == [second]
    assert failed.body["data"][0]["error"]["type"] == "content_blocked"

    # And bad parameters are refused
    for query in ("state=done", "limit=0", "limit=101", "limit=x"):
        reply = await env.get(f"/v1/jobs?{query}")
        assert reply.status == 422, query
