"""A worker SIGKILLed mid-chain: the chain job completes exactly once, the steps it had
finished kept (not run again), on RabbitMQ and on Redis."""

import asyncio
import signal
import time

from tests.e2e.test_topology_crash import CRASH_ENV
from tests.support.bus_tap import BusTap
from tests.support.deployment import BOTH_BROKERS, Deployment, deployment
from tests.support.unique import new_id

# The killed worker held its call's cross-process lock: it expires after this, and the
# rerun takes it (by default 30 s).
ENV = {**CRASH_ENV, "PROMPTBUS_LOCK_TTL_S": "3"}


async def step_running(d: Deployment, url: str, step: str, timeout_s: float = 10.0) -> None:
    """Wait until the job at `url` shows `step` running."""
    deadline = time.monotonic() + timeout_s
    while True:
        _, job = await d.get(url)
        states = {s["name"]: s["state"] for s in (job.get("chain") or {}).get("steps", ())}
        if states.get(step) == "running":
            return
        assert time.monotonic() < deadline, f"{step} never ran: {job}"
        await asyncio.sleep(0.02)


@BOTH_BROKERS
async def test_a_chain_job_survives_sigkill_of_the_worker_mid_chain(broker: str) -> None:
    async with deployment(broker, ENV) as d:
        (worker,), (ingress,) = await asyncio.gather(d.workers(1), d.ingresses(1))

        async with BusTap.completions(d.bus) as tap:
            # Given a classify-then-route job whose every call takes 1 s upstream, its
            # classifier done and its route's call under way
            message = f"{new_id('killed-chain')} [[emulator:say=billing]] [[emulator:delay=1000]]"
            chain = {"id": "classify_route", "variables": {"message": message}}
            status, accepted = await d.post(f"{ingress.url}/v1/jobs", {"chain": chain})
            assert status == 202, accepted
            job_id = accepted["id"]
            url = f"{ingress.url}/v1/jobs/{job_id}"
            await step_running(d, url, "billing_answer")
            await d.wait_calls(2)

            # When the worker is SIGKILLed mid-step, and a fresh one starts
            worker.kill(signal.SIGKILL)
            assert not tap.for_job(job_id), "completed before the kill: the test proves nothing"
            await d.workers(1)

            # Then the job completes, exactly once, with one result
            done = await tap.wait_for(job_id=job_id, timeout_s=30)
            assert done.state == "succeeded", done.body
            await asyncio.sleep(1.5)
            assert len(tap.for_job(job_id)) == 1, tap.for_job(job_id)
            status, job = await d.get(url)
            assert job["state"] == "succeeded", job
            assert job["result"] == done.body["result"]
            assert job["chain"]["output"]["label"] == "billing"
            # the classifier ran once (its value was kept); the route's call twice (killed, redone)
            assert [c["step"] for c in job["chain"]["calls"]] == ["label", "billing_answer"]
            assert await d.calls() == 3


async def test_a_map_survives_sigkill_of_the_worker_mid_items() -> None:
    # On RabbitMQ (the Redis path of a killed task is the test above's)
    async with deployment("rabbitmq", ENV) as d:
        (worker,), (ingress,) = await asyncio.gather(d.workers(1), d.ingresses(1))

        async with BusTap.completions(d.bus) as tap:
            # Given a summary of three sections: one answered at once, two taking 1 s each
            tag = new_id("killed-map")
            slow = "[[emulator:delay=1000]]"
            sections = [
                f"{tag} part {n} {slow if n else ''} " + " ".join(f"w{i}" for i in range(600))
                for n in range(3)
            ]
            chain = {"id": "summarize_long", "variables": {"document": "\n\n".join(sections)}}
            status, accepted = await d.post(f"{ingress.url}/v1/jobs", {"chain": chain})
            assert status == 202, accepted
            job_id = accepted["id"]
            url = f"{ingress.url}/v1/jobs/{job_id}"
            # its map under way: the fast item done, the slow two in flight
            deadline = time.monotonic() + 10
            while True:
                _, job = await d.get(url)
                (partials,) = [s for s in job["chain"]["steps"] if s["name"] == "partials"]
                if partials.get("items_done") == 1 and await d.calls() == 3:
                    break
                assert time.monotonic() < deadline, job
                await asyncio.sleep(0.02)

            # When the worker is SIGKILLed, and a fresh one starts
            worker.kill(signal.SIGKILL)
            await d.workers(1)

            # Then the job completes once, its map's items each counted once
            done = await tap.wait_for(job_id=job_id, timeout_s=30)
            assert done.state == "succeeded", done.body
            await asyncio.sleep(1.5)
            assert len(tap.for_job(job_id)) == 1, tap.for_job(job_id)
            _, job = await d.get(url)
            assert len(job["chain"]["values"]["partials"]) == 3
            steps = [c["step"] for c in job["chain"]["calls"]]
            assert steps.count("chunk_summary") == 3
            # the fast item's call, the slow two twice (killed, redone), then the summary
            assert await d.calls() == 6
