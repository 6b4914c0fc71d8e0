"""A worker killed or stopped while it holds a job: the job still completes, exactly once."""

import asyncio
import signal
import time

from tests.support.bus_tap import BusTap
from tests.support.deployment import BOTH_BROKERS, Deployment, deployment
from tests.support.processes import Proc
from tests.support.unique import new_id

# On Redis an unacknowledged task comes back only after the visibility timeout: short here,
# still well above a step of this test (2 s of emulator latency).
VISIBILITY_S = 5
CRASH_ENV = {"PROMPTBUS_REDIS_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S)}
STOP_BOUND_S = 15.0


async def holder(d: Deployment, workers: list[Proc], timeout_s: float = 5.0) -> Proc:
    """The worker process connected to the emulator: the one mid-generation."""
    port = int(str(d.emulator.url).rsplit(":", 1)[1])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        holding = [w for w in workers if w.connected_to(port)]
        if len(holding) == 1:
            return holding[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no single worker holds a connection to the emulator")


@BOTH_BROKERS
async def test_a_job_survives_sigkill_of_the_worker_running_it(broker: str) -> None:
    async with deployment(broker, CRASH_ENV) as d:
        workers = await d.workers(2)
        (ingress,) = await d.ingresses(1)

        async with BusTap.completions(d.bus) as tap:
            # Given a job in generation (2 s upstream) on one of two workers
            job_id = await d.submit(ingress, f"{new_id('killed')} [[emulator:delay=2000]]")
            await d.wait_calls(1)

            # When both workers are SIGKILLed mid-generation, and a fresh one starts
            for worker in workers:
                worker.kill(signal.SIGKILL)
            assert all(w.popen.returncode == -signal.SIGKILL for w in workers)
            assert not tap.for_job(job_id), "completed before the kill: the test proves nothing"
            await d.workers(1)

            # Then the job completes, exactly once (on Redis after the visibility timeout)
            done = await tap.wait_for(job_id=job_id, timeout_s=30)
            assert done.state == "succeeded", done.body
            await asyncio.sleep(2)
            assert len(tap.for_job(job_id)) == 1, tap.for_job(job_id)
            status, job = await d.get(f"{ingress.url}/v1/jobs/{job_id}")
            assert status == 200
            assert job["state"] == "succeeded", job
            # the killed attempt's call, and the one that finished the job
            assert await d.calls() == 2


@BOTH_BROKERS
async def test_sigterm_lets_the_worker_finish_its_job_and_exit(broker: str) -> None:
    async with deployment(broker, CRASH_ENV) as d:
        workers = await d.workers(2)
        (ingress,) = await d.ingresses(1)

        async with BusTap.completions(d.bus) as tap:
            # Given a job in generation (2 s upstream) on one of two workers
            job_id = await d.submit(ingress, f"{new_id('term')} [[emulator:delay=2000]]")
            await d.wait_calls(1)
            busy = await holder(d, workers)
            (idle,) = [w for w in workers if w is not busy]

            # When that worker alone gets SIGTERM
            busy.send(signal.SIGTERM)

            # Then it exits by itself, cleanly, within the bound
            exited = await asyncio.to_thread(busy.exited_within, STOP_BOUND_S)
            assert exited, f"still running {STOP_BOUND_S:g} s after SIGTERM:\n{busy.log()[-3000:]}"
            assert busy.popen.returncode == 0, busy.log()[-3000:]

            # And the job completes exactly once, from the generation it had in hand
            done = await tap.wait_for(job_id=job_id, timeout_s=20)
            assert done.state == "succeeded", done.body
            await asyncio.sleep(1.5)
            assert len(tap.for_job(job_id)) == 1, tap.for_job(job_id)
            assert await d.calls() == 1
            assert idle.alive()
