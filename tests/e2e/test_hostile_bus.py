"""Hostile bus publishers on RabbitMQ: a 10 MB request event and events with malformed AMQP
properties are dead-lettered (with a failed completion where they name a job), and the
consumer goes on running good events and serving HTTP callers."""

import asyncio
import json
import pickle
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.support.bus_tap import BusTap
from tests.support.job_env import JobEnv, job_env
from tests.support.polling import poll
from tests.support.unique import new_id

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env() -> AsyncIterator[JobEnv]:
    async with job_env("rabbitmq") as running:
        yield running


def _event(job_id: str, prompt: str) -> dict[str, Any]:
    return {
        "schema": "promptbus.request/v1",
        "job_id": job_id,
        "request": {"model": "flash", "prompt": prompt},
    }


def _publish(env: JobEnv, body: bytes, **properties: Any) -> None:
    """Publish to the requests exchange with exactly the given AMQP properties."""
    with env.bus.connection() as connection:
        connection.Producer().publish(
            body,
            exchange=env.bus.topology.requests_exchange,
            routing_key="request",
            declare=[env.bus.topology.requests_exchange],
            **properties,
        )


async def _still_served(env: JobEnv) -> None:
    """A good event after the bad ones runs, and an HTTP caller is answered."""
    job_id = new_id("after-hostile")
    async with BusTap.completions(env.bus) as completions:
        await asyncio.to_thread(
            _publish,
            env,
            json.dumps(_event(job_id, job_id)).encode(),
            content_type="application/json",
        )
        normal = await env.gateway.generate({"model": "flash", "prompt": "meanwhile"})
        assert normal.status == 200, normal.body
        assert (await completions.wait_for(job_id=job_id)).state == "succeeded"


async def test_a_10_mb_event_is_dead_lettered_unparsed(env: JobEnv) -> None:
    # Given an event of 10 MB (the limit is 2 MiB) that names its job first
    job_id = new_id("huge")
    body = json.dumps(_event(job_id, "x " * 5_000_000)).encode()
    assert len(body) > 10_000_000
    async with BusTap.dead_letters(env.bus) as dlq, BusTap.completions(env.bus) as completions:
        # When it is published
        await asyncio.to_thread(
            _publish, env, body, content_type="application/json", headers={"x-test-id": job_id}
        )

        # Then it is dead-lettered, saying the limit, and its job gets a failed completion
        dead = await dlq.wait_for(test_id=job_id)
        assert dead.reason == f"event is {len(body)} bytes, over the 2097152-byte limit"
        failed = await completions.wait_for(job_id=job_id)
        assert failed.routing_key == "completion.failed"
        assert failed.body["error"]["type"] == "invalid_event"
    await _still_served(env)


async def test_events_with_malformed_properties_are_dead_lettered(env: JobEnv) -> None:
    # Given a pickled event under pickle's content type, an event with no headers nor
    # content type whose body is not a request, and one in a content encoding never declared
    pickled_id, bare_id, encoded_id = new_id("pickled"), new_id("bare"), new_id("encoded")
    cases: list[tuple[bytes, dict[str, Any]]] = [
        (
            pickle.dumps(_event(pickled_id, "hi")),
            {"content_type": "application/x-python-serialize", "content_encoding": "binary"},
        ),
        (json.dumps({"job_id": bare_id, "hello": "world"}).encode(), {}),
        (
            b"\x1f\x8b" + json.dumps(_event(encoded_id, "hi")).encode(),
            {"content_type": "application/json", "content_encoding": "gzip"},
        ),
    ]
    async with BusTap.dead_letters(env.bus) as dlq, BusTap.completions(env.bus) as completions:
        calls_before = await env.emulator.calls()

        # When each is published
        for body, properties in cases:
            await asyncio.to_thread(_publish, env, body, **properties)

        # Then each is dead-lettered unchanged, none unpickled or run
        dead_bare = await dlq.wait_for(job_id=bare_id)
        assert "unknown schema None" in str(dead_bare.reason)
        assert (await completions.wait_for(job_id=bare_id)).routing_key == "completion.failed"
        raws = {body for body, _ in cases}
        await _dead_lettered(dlq, raws)
        assert await env.emulator.calls() == calls_before
        for job_id in (pickled_id, encoded_id):
            assert (await env.get(f"/v1/jobs/{job_id}")).status == 404
    await _still_served(env)


async def _dead_lettered(dlq: BusTap, raws: set[bytes]) -> None:
    async def seen() -> set[bytes]:
        return {d.raw for d in dlq.deliveries}

    await poll(seen, lambda found: raws <= found, timeout_s=20, what="every event dead-lettered")
