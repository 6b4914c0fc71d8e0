"""`promptbus worker` on a prefork pool: jobs run in child processes, a lost child loses no job.

Each pool child builds its own loop and stage context after the fork; the bridge and the
Celery consumer stay in the worker's main process. A child killed mid-task is Celery's
`task_reject_on_worker_lost` case: the parent sees the child die, rejects the task's
message with requeue (acks are late), and forks a new child.
"""

import asyncio
import os
import signal
import time

from tests.support.bus_tap import BusTap
from tests.support.deployment import BOTH_BROKERS, Deployment, completed_once, deployment
from tests.support.processes import PROMPTBUS, Proc
from tests.support.unique import new_id

CHILDREN = 2
PREFORK_ENV = {"PROMPTBUS_WORKER_POOL": "prefork", "PROMPTBUS_WORKER_CONCURRENCY": str(CHILDREN)}
JOBS = 20
STOP_BOUND_S = 15.0


async def pool_of(worker: Proc, timeout_s: float = 10.0) -> list[int]:
    """The worker's pool children, once all `CHILDREN` of them run."""
    deadline = time.monotonic() + timeout_s
    while len(children := worker.children()) != CHILDREN:
        assert time.monotonic() < deadline, f"children {children}; log:\n{worker.log()[-3000:]}"
        await asyncio.sleep(0.05)
    return children


async def slow_jobs_in_every_child(d: Deployment, ingress: Proc) -> list[str]:
    """One 2-second generation in flight per child: every child holds a job."""
    before = await d.calls()
    ids = [
        await d.submit(ingress, f"{new_id(f'slow{i}')} [[emulator:delay=2000]]")
        for i in range(CHILDREN)
    ]
    await d.wait_calls(before + CHILDREN)
    return ids


@BOTH_BROKERS
async def test_a_prefork_worker_runs_jobs_once_and_a_killed_childs_job_is_redelivered(
    broker: str,
) -> None:
    async with deployment(broker) as d:
        # Given a worker on a prefork pool of two children
        (worker,) = await d.workers(1, PREFORK_ENV)
        (ingress,) = await d.ingresses(1)
        children = await pool_of(worker)

        async with BusTap.completions(d.bus) as tap:
            # When it runs a batch of jobs
            ids = [await d.submit(ingress, new_id(f"fork{i}")) for i in range(JOBS)]

            # Then each completes exactly once, with one upstream call each
            states = await completed_once(tap, ids, timeout_s=30)
            assert states == {"succeeded": JOBS}, states
            assert await d.calls() == JOBS

            # When a child is SIGKILLed while it holds a job (every child holds one)
            slow = await slow_jobs_in_every_child(d, ingress)
            assert not any(tap.for_job(job_id) for job_id in slow)
            victim = children[0]
            os.kill(victim, signal.SIGKILL)

            # Then both jobs complete exactly once: the lost one runs again in a new child
            states = await completed_once(tap, slow, timeout_s=30)
            assert states == {"succeeded": CHILDREN}, states
            assert await d.calls() == JOBS + CHILDREN + 1
            assert worker.alive()
            replaced = await pool_of(worker)
            assert victim not in replaced

        # And on SIGTERM to its main process the worker stops its pool and exits by itself
        worker.send(signal.SIGTERM)
        exited = await asyncio.to_thread(worker.exited_within, STOP_BOUND_S)
        assert exited, f"still running {STOP_BOUND_S:g} s after SIGTERM:\n{worker.log()[-3000:]}"
        assert worker.popen.returncode == 0, worker.log()[-3000:]


async def test_worker_flags_choose_the_pool_and_concurrency_over_the_environment() -> None:
    async with deployment("rabbitmq") as d:
        # Given a worker whose flags say prefork of two, against an environment of 16 threads
        threads = {"PROMPTBUS_WORKER_POOL": "threads", "PROMPTBUS_WORKER_CONCURRENCY": "16"}
        argv = [PROMPTBUS, "worker", "--pool", "prefork", "--concurrency", str(CHILDREN)]
        worker = d.procs.spawn("worker", argv, threads)
        await asyncio.to_thread(worker.wait_for_line, "promptbus worker consuming", 30)
        (ingress,) = await d.ingresses(1)

        # Then it runs a pool of two child processes, and says so
        await pool_of(worker)
        assert '"concurrency":2,"pool":"prefork"' in worker.log()

        # And a job runs through it
        async with BusTap.completions(d.bus) as tap:
            job_id = await d.submit(ingress, new_id("flags"))
            assert await completed_once(tap, [job_id], timeout_s=30) == {"succeeded": 1}
