"""Request events straight on the bus: bad events, duplicates, other processes, a dead broker."""

import asyncio
import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.support.bus import BROKERS, CROSS_PROCESS_BROKERS
from tests.support.bus_tap import BusTap
from tests.support.gateway import serving
from tests.support.job_env import JobEnv, job_env
from tests.support.task_traces import traced_tasks
from tests.support.unique import new_id

pytestmark = pytest.mark.asyncio(loop_scope="module")

REPO = Path(__file__).resolve().parents[2]
QUIET_S = 0.5


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BROKERS)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[JobEnv]:
    """One gateway with its embedded worker per broker, shared by this module's tests."""
    async with job_env(request.param) as running:
        yield running


def request_event(job_id: str, prompt: str, **extra: Any) -> dict[str, Any]:
    """A valid `promptbus.request/v1` event."""
    return {
        "schema": "promptbus.request/v1",
        "job_id": job_id,
        "request": {"model": "flash", "prompt": prompt},
        **extra,
    }


def encode(event: Any) -> bytes:
    return json.dumps(event).encode()


async def publish(env: JobEnv, body: bytes, test_id: str) -> None:
    """Publish raw bytes to the requests exchange with plain Kombu, off the event loop."""
    await asyncio.to_thread(env.bus.publish_raw, body, test_id=test_id)


async def test_malformed_events_are_dead_lettered_with_a_reason(env: JobEnv) -> None:
    # Given four events the gateway cannot run, three of them naming a job
    ids = {case: new_id(f"bad-{case}") for case in ("schema", "request", "model")}
    cases: dict[str, tuple[bytes, str | None]] = {
        "json": (b'{"schema": "promptbus.request/v1", "job_id": ', None),
        "schema": (
            encode({**request_event(ids["schema"], "hi"), "schema": "acme.request/v9"}),
            ids["schema"],
        ),
        "request": (
            encode({"schema": "promptbus.request/v1", "job_id": ids["request"], "request": {}}),
            ids["request"],
        ),
        "model": (
            encode(
                {**request_event(ids["model"], "hi"), "request": {"model": "gpt-9", "prompt": "x"}}
            ),
            ids["model"],
        ),
    }
    tags = {case: new_id(case) for case in cases}
    async with BusTap.dead_letters(env.bus) as dlq, BusTap.completions(env.bus) as completions:
        calls_before = await env.emulator.calls()

        # When they are published to the requests exchange
        for case, (body, _job_id) in cases.items():
            await publish(env, body, tags[case])

        # Then each lands in the dead-letter queue, unchanged, with the reason it was refused
        dead = {case: await dlq.wait_for(test_id=tags[case]) for case in cases}
        for case, (body, _job_id) in cases.items():
            assert dead[case].raw == body
        assert str(dead["json"].reason).startswith("invalid JSON")
        assert "unknown schema 'acme.request/v9'" in str(dead["schema"].reason)
        assert str(dead["request"].reason).startswith("invalid event: request")
        assert str(dead["model"].reason).startswith("invalid event")
        assert "gpt-9" in str(dead["model"].reason)

        # And each that names a job gets a failed completion saying why, and no job
        for case, (_body, job_id) in cases.items():
            if job_id is None:
                continue
            failed = await completions.wait_for(job_id=job_id)
            assert failed.routing_key == "completion.failed"
            assert failed.body["error"]["type"] == "invalid_event"
            assert failed.body["error"]["retryable"] is False
            assert failed.body["error"]["message"] == dead[case].reason
            assert (await env.get(f"/v1/jobs/{job_id}")).status == 404

        # And nothing else was said about them, and nothing went upstream
        await asyncio.sleep(QUIET_S)
        assert sorted(str(d.job_id) for d in completions.deliveries) == sorted(ids.values())
        assert await env.emulator.calls() == calls_before


async def test_a_burst_of_bad_events_is_dead_lettered_and_good_ones_still_run(env: JobEnv) -> None:
    # Given a tap on the dead-letter queue and one on completions
    tags = [new_id("burst") for _ in range(30)]
    job_id = new_id("after-burst")
    async with BusTap.dead_letters(env.bus) as dlq, BusTap.completions(env.bus) as completions:
        # When thirty bad events arrive back to back, then a good one
        for tag in tags:
            await publish(env, b"not json at all", tag)
        await publish(env, encode(request_event(job_id, f"{job_id} still flowing")), new_id("ok"))

        # Then every bad one is dead-lettered, and the good one runs
        for tag in tags:
            assert str((await dlq.wait_for(test_id=tag)).reason).startswith("invalid JSON")
        assert (await completions.wait_for(job_id=job_id)).state == "succeeded"


async def test_a_corrected_event_under_a_refused_job_id_is_a_duplicate(env: JobEnv) -> None:
    # Given a job id whose event was refused, and its failure published
    job_id = new_id("refused")
    sentinel = new_id("sentinel")
    async with BusTap.completions(env.bus) as completions:
        await publish(env, encode({**request_event(job_id, "hi"), "request": {}}), new_id("bad"))
        await completions.wait_for(job_id=job_id)
        calls_before = await env.emulator.calls()

        # When a valid event under the same id follows, then an unrelated one
        await publish(env, encode(request_event(job_id, f"{job_id} fixed")), new_id("fixed"))
        await publish(env, encode(request_event(sentinel, f"{sentinel} later")), new_id("next"))

        # Then the unrelated one completes, while the id that already failed says nothing more:
        # no second completion, no upstream call, and no job left running for ever
        await completions.wait_for(job_id=sentinel)
        await asyncio.sleep(QUIET_S)
        assert [d.state for d in completions.for_job(job_id)] == ["failed"]
        assert await env.emulator.calls() - calls_before == 1
        assert (await env.get(f"/v1/jobs/{job_id}")).status == 404


async def test_a_bad_event_reusing_a_live_job_id_does_not_end_that_job(env: JobEnv) -> None:
    # Given a job in flight
    async with BusTap.completions(env.bus) as completions, BusTap.dead_letters(env.bus) as dlq:
        accepted = await env.submit(
            {"model": "flash", "prompt": f"{new_id('live')} [[emulator:delay=500]]"}
        )
        job_id = accepted.body["id"]

        # When a malformed event names the same job
        tag = new_id("hijack")
        bad = {**request_event(job_id, "hi"), "schema": "acme.request/v9"}
        await publish(env, encode(bad), tag)

        # Then that event is dead-lettered, and the job runs to its own success, reported once
        assert "unknown schema" in str((await dlq.wait_for(test_id=tag)).reason)
        done = await env.wait_job(job_id)
        assert done.body["state"] == "succeeded", done.body
        await completions.wait_for(job_id=job_id)
        await asyncio.sleep(QUIET_S)
        assert [d.state for d in completions.for_job(job_id)] == ["succeeded"]


async def test_the_same_event_twice_is_processed_once(env: JobEnv) -> None:
    # Given a valid event from an upstream system
    job_id = new_id("twice")
    sentinel = new_id("sentinel")
    event = request_event(
        job_id,
        f"{job_id} only once",
        correlation_id=f"corr-{job_id}",
        metadata={"source": "test"},
    )
    with traced_tasks() as tasks:
        async with BusTap.completions(env.bus) as completions:
            calls_before = await env.emulator.calls()

            # When it is published twice, then an unrelated event after it
            await publish(env, encode(event), new_id("first"))
            await publish(env, encode(event), new_id("again"))
            await publish(env, encode(request_event(sentinel, f"{sentinel} x")), new_id("next"))

            # Then the job ran once: one completion, one upstream call, one chain of tasks
            delivery = await completions.wait_for(job_id=job_id)
            await completions.wait_for(job_id=sentinel)
            await tasks.wait_finished(f"{sentinel}.emit")
            await asyncio.sleep(QUIET_S)
            assert delivery.body["state"] == "succeeded"
            assert delivery.body["correlation_id"] == f"corr-{job_id}"
            assert len(completions.for_job(job_id)) == 1
            assert tasks.started_for(job_id).count(f"{job_id}.generate") == 1
            assert await env.emulator.calls() - calls_before == 2  # the job and the sentinel

    # And the job is on record as the event described it
    job = await env.get(f"/v1/jobs/{job_id}")
    assert job.body["state"] == "succeeded"
    assert job.body["metadata"] == {"source": "test"}
    assert job.body["correlation_id"] == f"corr-{job_id}"


async def read_line_with(stream: asyncio.StreamReader, marker: str, timeout_s: float) -> str:
    """The first line of `stream` containing `marker`, within a deadline."""
    seen = []
    try:
        async with asyncio.timeout(timeout_s):
            while line := (await stream.readline()).decode():
                seen.append(line)
                if marker in line:
                    return line
    except TimeoutError:
        pass
    raise AssertionError(f"no line with {marker!r} within {timeout_s:g}s; got {seen}")


@pytest.mark.parametrize("env", CROSS_PROCESS_BROKERS, indirect=True)
async def test_separate_processes_talk_to_the_gateway_over_the_bus_alone(env: JobEnv) -> None:
    # Given the example consumer, in its own process, listening for one job's completion
    job_id = new_id("upstream")
    queue = env.bus.queue_name("example")
    python = sys.executable
    consumer = await asyncio.create_subprocess_exec(
        python,
        "examples/consume_completions.py",
        *("--broker", env.bus.url, "--exchange", env.bus.topology.completions_exchange.name),
        *("--queue", queue, "--job-id", job_id),
        *("--count", "1", "--timeout", "30"),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert consumer.stderr is not None
        await read_line_with(consumer.stderr, f"listening on {queue}", timeout_s=20)

        # When the example publisher, in another process, publishes a request event
        publisher = await asyncio.create_subprocess_exec(
            python,
            "examples/publish_event.py",
            *("--broker", env.bus.url, "--exchange", env.bus.topology.requests_exchange.name),
            *("--job-id", job_id, "--prompt", f"{job_id} from afar"),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(30):
            published, errors = await publisher.communicate()
        assert publisher.returncode == 0, errors.decode()
        assert published.decode().strip() == job_id

        # Then the consumer prints the job's success and exits cleanly
        async with asyncio.timeout(40):
            out, errors = await consumer.communicate()
        assert consumer.returncode == 0, errors.decode()
        lines = out.decode().splitlines()
        assert len(lines) == 1, lines
        event = json.loads(lines[0])
        assert event["job_id"] == job_id
        assert event["state"] == "succeeded"
        assert event["correlation_id"] == f"corr-{job_id}"
        assert f"{job_id} from afar" in event["result"]["text"]
    finally:
        if consumer.returncode is None:
            consumer.kill()
            await consumer.wait()

    # And the gateway has the job on record, from the event alone
    job = await env.get(f"/v1/jobs/{job_id}")
    assert job.body["state"] == "succeeded"
    assert job.body["metadata"] == {"source": "examples/publish_event.py"}


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on (held bound, so nobody else takes it)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


@pytest.mark.parametrize(
    "broker_url",
    ["amqp://guest:guest@127.0.0.1:{port}//", "redis://127.0.0.1:{port}/15"],
    ids=["amqp", "redis"],
)
async def test_submit_fails_fast_and_retryably_when_the_broker_is_down(
    broker_url: str, closed_port: int
) -> None:
    # Given a gateway whose broker does not answer, allowed one second to publish
    bound_s = 1.0
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        serving(
            session,
            broker_url=broker_url.format(port=closed_port),
            publish_timeout_s=bound_s,
            bus_suffix=f".t-{new_id('down')}",
        ) as gateway,
    ):
        key = {"Idempotency-Key": new_id("key")}
        body = json.dumps({"model": "flash", "prompt": "nobody will hear this"})

        # When a job is submitted
        started = time.monotonic()
        refused = await gateway.post_raw("/v1/jobs", body, key)
        took = time.monotonic() - started

        # Then it is refused as retryable, within a few times the bound
        assert refused.status == 503, refused.body
        assert refused.body["error"]["type"] == "broker_unavailable"
        assert refused.body["error"]["retryable"] is True
        assert took < 3 * bound_s

        # And no job was recorded
        listed = await gateway.get("/v1/jobs")
        assert listed.body == {"data": [], "next_cursor": None}

        # And its Idempotency-Key was released: reused, with the same or another body, it
        # is tried again (and refused by the broker again) rather than held or in conflict
        again = await gateway.post_raw("/v1/jobs", body, key)
        other = await gateway.post_raw(
            "/v1/jobs", json.dumps({"model": "flash", "prompt": "another"}), key
        )
        assert (again.status, again.body["error"]["type"]) == (503, "broker_unavailable")
        assert (other.status, other.body["error"]["type"]) == (503, "broker_unavailable")
