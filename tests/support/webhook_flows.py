"""The webhook tests' job env and steps: submit jobs, register endpoints, read attempts."""

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

from pipeline.bus.celery_app import WEBHOOK_FAMILY
from tests.support.bus import Bus
from tests.support.gateway import Gateway, Reply
from tests.support.job_env import JobEnv, job_env
from tests.support.polling import poll
from tests.support.unique import new_id
from tests.support.webhook_receivers import Received

TERMINAL = frozenset({"delivered", "failed", "refused"})
FAST_RETRIES = [0.2, 0.2]
# Gateways for these tests: short waits between attempts, a timeout well above a loopback reply.
FAST: dict[str, Any] = {"webhook_retry_schedule": FAST_RETRIES, "webhook_timeout": 5.0}
SETTLE_S = 15.0


def flash(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "flash", "prompt": prompt, **extra}


async def post_json(gateway: Gateway, path: str, body: Any = None) -> Reply:
    return await gateway.post_raw(path, json.dumps(body if body is not None else {}))


async def submit(env: JobEnv, *, webhook_url: str | None = None, prompt: str = "") -> str:
    """Submit a job (with its own webhook when `webhook_url` is given); its id."""
    body = flash(f"{new_id('webhook')} {prompt}")
    if webhook_url is not None:
        body["webhook"] = {"url": webhook_url}
    accepted = await env.submit(body)
    assert accepted.status == 202, accepted.body
    job_id: str = accepted.body["id"]
    return job_id


async def register(env: JobEnv, url: str, events: list[str] | None = None) -> tuple[str, str]:
    """Register an endpoint; its id and secret."""
    spec: dict[str, Any] = {"url": url, "description": "test receiver"}
    if events is not None:
        spec["events"] = events
    created = await post_json(env.gateway, "/v1/webhooks", spec)
    assert created.status == 201, created.body
    assert created.header("Location") == f"/v1/webhooks/{created.body['id']}"
    return created.body["id"], created.body["secret"]


async def attempts(env: JobEnv, job_id: str, message_id: str | None = None) -> list[dict[str, Any]]:
    """The job's recorded webhook attempts (of one message when `message_id` is given)."""
    reply = await env.get(f"/v1/jobs/{job_id}")
    assert reply.status == 200, reply.body
    found: list[dict[str, Any]] = reply.body.get("webhook_attempts", [])
    return [a for a in found if message_id is None or a["message_id"] == message_id]


async def settled(
    env: JobEnv, job_id: str, message_id: str | None = None, timeout_s: float = SETTLE_S
) -> list[dict[str, Any]]:
    """The attempts of one message, once the last of them ended it (delivered/failed/refused)."""
    message_id = message_id or f"msg_{job_id}"
    return await poll(
        lambda: attempts(env, job_id, message_id),
        lambda found: bool(found) and found[-1]["outcome"] in TERMINAL,
        timeout_s=timeout_s,
        what=f"a final attempt of {message_id}",
    )


async def finished(env: JobEnv, job_id: str) -> dict[str, Any]:
    """The job once it has finished."""
    reply = await env.wait_job(job_id, 20)
    assert reply.body["state"] in ("succeeded", "failed"), reply.body
    body: dict[str, Any] = reply.body
    return body


def assert_all_verify(received: list[Received], secret: str) -> None:
    for request in received:
        request.verify(secret)


@contextmanager
def webhook_stage_deleted(bus: Bus) -> Iterator[None]:
    """Delete the webhook stage queue and exchange with the bus (its own clean-up misses them).

    Enter it after the bus and leave it after every gateway on the bus has stopped.
    """
    name = bus.topology.stage_queue(WEBHOOK_FAMILY).name
    bus.extra_queues.append(name)  # the bus deletes its extra queues when it ends
    try:
        yield
    finally:
        with bus.connection() as connection, suppress(KeyError):
            connection.channel().exchange_delete(name)


@asynccontextmanager
async def webhook_env(broker: str, **overrides: Any) -> AsyncIterator[JobEnv]:
    """`job_env`, whose clean-up also deletes the webhook stage queue and its exchange."""
    buses: list[Bus] = []
    try:
        async with job_env(broker, **overrides) as env:
            buses.append(env.bus)
            env.bus.extra_queues.append(env.bus.topology.stage_queue(WEBHOOK_FAMILY).name)
            yield env
    finally:
        for bus in buses:
            with bus.connection() as connection, suppress(KeyError):
                connection.channel().exchange_delete(bus.topology.stage_queue(WEBHOOK_FAMILY).name)
