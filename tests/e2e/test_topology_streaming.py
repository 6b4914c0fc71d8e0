"""A streaming job across OS processes: a worker generates, ingresses that did not stream it.

The worker (`promptbus worker`) writes each delta to the job's Redis stream and publishes it
on the bus; `serve --no-worker` ingresses, which never generate, serve the job's SSE feed
from that stream, live or late. A worker killed mid-generation is followed by a re-run
whose deltas are a new run, from index 0.
"""

import asyncio
import json
import signal
from typing import Any

import aiohttp
import jsonschema

from schemas.export import JSON_DIR
from tests.support.bus_tap import BusTap
from tests.support.deployment import BOTH_BROKERS, Deployment, deployment
from tests.support.processes import Proc
from tests.support.sse import Event, events
from tests.support.unique import new_id

DELTA_SCHEMA = json.loads((JSON_DIR / "completion_delta.json").read_text())
# On Redis a killed worker's task comes back after the visibility timeout: short here.
CRASH_ENV = {"PROMPTBUS_REDIS_VISIBILITY_TIMEOUT_S": "5"}


async def read_events(d: Deployment, ingress: Proc, job_id: str) -> list[Event]:
    """The job's whole event stream from `ingress`, read until the server ends it."""
    timeout = aiohttp.ClientTimeout(total=40)
    async with d.session.get(f"{ingress.url}/v1/jobs/{job_id}/events", timeout=timeout) as resp:
        assert resp.status == 200
        return [event async for event in events(resp)]


def deltas_of(seen: list[Event]) -> list[dict[str, Any]]:
    return [e.data for e in seen if e.name == "delta"]


@BOTH_BROKERS
async def test_a_workers_deltas_reach_the_bus_and_ingresses_that_did_not_generate_them(
    broker: str,
) -> None:
    async with deployment(broker) as d:
        await d.workers(1)
        a, b = await d.ingresses(2)

        async with BusTap.completions(d.bus, "completion.*") as tap:
            # Given a streaming job submitted to ingress A, its event stream opened on A at once
            prompt = f"{new_id('across')} stream this [[emulator:delay=500]]"
            job_id = await d.submit(a, prompt, stream=True)

            # When A's stream is read to its end, live
            live = await read_events(d, a, job_id)

            # Then A sent the worker's deltas between the states, then the final state
            assert live[-1].name == "succeeded", [e.name for e in live]
            text = live[-1].data["result"]["text"]
            deltas = deltas_of(live)
            assert len(deltas) >= 2
            assert [(x["run"], x["index"]) for x in deltas] == [(1, i) for i in range(len(deltas))]
            assert "".join(x["text"] for x in deltas) == text
            assert "running" in [e.name for e in live[: [e.name for e in live].index("delta")]]

            # And ingress B, asked only now, sends every delta too, then the final state
            late = await read_events(d, b, job_id)
            assert deltas_of(late) == deltas
            assert late[-1].name == "succeeded"

            # And the bus carried the same deltas, valid, before the job's one completion
            final = await tap.wait_for(job_id=job_id, state="succeeded")
            await asyncio.sleep(0.5)
            arrived = tap.for_job(job_id)
            assert [x.routing_key for x in arrived] == [
                *["completion.delta"] * len(deltas),
                "completion.succeeded",
            ]
            for delivery in arrived[:-1]:
                jsonschema.validate(delivery.body, DELTA_SCHEMA)
            assert [x.body for x in arrived[:-1]] == deltas
            assert final.body["result"]["text"] == text


@BOTH_BROKERS
async def test_a_rerun_after_a_worker_is_killed_streams_as_a_new_run(broker: str) -> None:
    async with deployment(broker, CRASH_ENV) as d:
        workers = await d.workers(1)
        (ingress,) = await d.ingresses(1)

        async with BusTap.deltas(d.bus) as tap:
            # Given a streaming job in generation (2 s before its first delta) on a worker
            job_id = await d.submit(
                ingress, f"{new_id('rerun')} [[emulator:delay=2000]]", stream=True
            )
            reader = asyncio.create_task(read_events(d, ingress, job_id))
            await d.wait_calls(1)

            # When that worker is SIGKILLed before it sent anything, and another starts
            workers[0].kill(signal.SIGKILL)
            assert not tap.for_job(job_id), "deltas before the kill: the test proves nothing"
            await d.workers(1)

            # Then the open event stream carries the re-run's deltas, as run 2 from index 0
            seen = await asyncio.wait_for(reader, 40)
            assert seen[-1].name == "succeeded", [e.name for e in seen]
            deltas = deltas_of(seen)
            assert [(x["run"], x["index"]) for x in deltas] == [(2, i) for i in range(len(deltas))]
            assert "".join(x["text"] for x in deltas) == seen[-1].data["result"]["text"]
            # (one queue keeps their order: the last one in means all are)
            await tap.wait_for(job_id=job_id, index=len(deltas) - 1, timeout_s=10)
            assert [x.body for x in tap.for_job(job_id)] == deltas
