"""Work that vanishes mid-way: a task message lost on the broker, Redis failing inside a step.

The first is what a Redis broker does when a BRPOP pops a task on a connection gone silent
(or a worker dies holding it): the message is gone and the job stops moving. The sweeper of a
worker notices the stall and re-drives the job. The second was the cause of a job lost on
Redis: a transient Redis error inside a Celery step ended the chain. Both must end each job
exactly once.
"""

import asyncio
import time

from kombu import Connection, Queue

from tests.support.bus_tap import BusTap
from tests.support.deployment import BOTH_BROKERS, Deployment, completed_once, deployment
from tests.support.services import REDIS_ADDRESS, REDIS_URL
from tests.support.tcp_proxy import Proxy
from tests.support.unique import new_id

STALL_S = 4
SLOW_MS = 2000


def _take_one(url: str, queue: str, timeout_s: float = 10.0) -> None:
    """Take the next message off `queue` and drop it, as a broker that lost it would."""
    deadline = time.monotonic() + timeout_s
    with Connection(url) as connection:
        bound = Queue(queue, no_declare=True).bind(connection.default_channel)
        while time.monotonic() < deadline:
            message = bound.get(no_ack=True)
            if message is not None:
                return
            time.sleep(0.02)
    raise AssertionError(f"no message appeared on {queue}")


async def _stage(d: Deployment, url: str, job_id: str, stage: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        _, job = await d.get(f"{url}/v1/jobs/{job_id}")
        if job.get("stage") == stage:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {stage}")


@BOTH_BROKERS
async def test_a_job_whose_task_message_is_lost_is_re_driven_and_ends_once(broker: str) -> None:
    async with deployment(broker) as d:
        # Given a worker with one thread and a short stall bound, busy with a slow job, so
        # that the next job's generate task waits on the broker
        (worker,) = await d.workers(
            1, {"PROMPTBUS_WORKER_CONCURRENCY": "1", "PROMPTBUS_JOB_STALL_S": str(STALL_S)}
        )
        (ingress,) = await d.ingresses(1)
        async with BusTap.completions(d.bus) as tap:
            slow = await d.submit(ingress, f"{new_id('slow')} [[emulator:delay={SLOW_MS}]]")
            await _stage(d, ingress.url or "", slow, "generate")
            lost = await d.submit(ingress, new_id("lost"))

            # When the broker loses that waiting task
            queue = d.bus.topology.stage_queue("generate").name
            await asyncio.to_thread(_take_one, d.bus.url, queue)
            started = time.monotonic()

            # Then the sweeper re-drives the job within the stall bound (and one sweep), and
            # both jobs end exactly once, each with one upstream call
            states = await completed_once(tap, [slow, lost], timeout_s=STALL_S * 3 + 10)
            assert states == {"succeeded": 2}, states
            waited_s = time.monotonic() - started
            assert waited_s < STALL_S * 2 + SLOW_MS / 1000 + 5, f"re-driven after {waited_s:.1f} s"
            redriven = [line for line in worker.log().splitlines() if "re-driven" in line]
            assert len(redriven) == 1, redriven
            assert lost in redriven[0], redriven
            assert await d.calls() == 2
            assert " raised unexpected" not in worker.log()


@BOTH_BROKERS
async def test_redis_failing_inside_steps_delays_jobs_but_loses_none(broker: str) -> None:
    proxy = Proxy(REDIS_ADDRESS)
    await proxy.open()
    try:
        async with deployment(broker) as d:
            # Given a worker that reaches Redis (job store, cache) through a proxy, and jobs
            # in the middle of their upstream call
            db = REDIS_URL.rsplit("/", 1)[1]
            (worker,) = await d.workers(
                1, {"PROMPTBUS_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/{db}"}
            )
            (ingress,) = await d.ingresses(1)
            async with BusTap.completions(d.bus) as tap:
                ids = [
                    await d.submit(ingress, f"{new_id(f'inside{i}')} [[emulator:delay=1500]]")
                    for i in range(5)
                ]
                for job_id in ids:
                    await _stage(d, ingress.url or "", job_id, "generate")

                # When Redis is cut while they generate (their next steps fail to record),
                # and more jobs arrive meanwhile (their dispatch fails too)
                await proxy.cut()
                more = [await d.submit(ingress, new_id(f"during{i}")) for i in range(5)]
                await asyncio.sleep(4)
                await proxy.open()

                # Then every job ends exactly once, each with one upstream call, and no step
                # ended in a task failure
                states = await completed_once(tap, [*ids, *more], timeout_s=60)
                assert states == {"succeeded": 10}, states
                assert await d.calls() == 10
                log = worker.log()
                assert "step retried: the infrastructure failed" in log
                assert " raised unexpected" not in log
    finally:
        await proxy.cut()
