"""Two ingresses and two workers as OS processes share upstream calls, jobs and completions."""

import asyncio
import time

import pytest

from tests.support.bus_tap import BusTap
from tests.support.deployment import BOTH_BROKERS, completed_once, deployment
from tests.support.unique import new_id

UNIQUE_JOBS = 1000


# Room for 1,000 jobs on a slow machine; the test itself measures nothing.
@pytest.mark.timeout(300)
@BOTH_BROKERS
async def test_two_ingresses_and_two_workers_share_calls_jobs_and_completions(
    broker: str,
) -> None:
    async with deployment(broker) as d:
        await d.workers(2)
        a, b = await d.ingresses(2)

        # (a) 100 identical concurrent requests over both ingresses make one upstream call
        before = await d.calls()
        body = {"model": "flash", "prompt": f"{new_id('once')} [[emulator:delay=500]]"}
        replies = await asyncio.gather(
            *(d.post(f"{gw.url}/v1/generate", body) for gw in (a, b) * 50)
        )
        assert [status for status, _ in replies] == [200] * 100, replies[:3]
        assert len({reply["text"] for _, reply in replies}) == 1
        assert await d.calls() - before == 1

        # (b) a job submitted to A is read and long-polled on B
        job_id = await d.submit(a, f"{new_id('across')} [[emulator:delay=300]]")
        status, read = await d.get(f"{b.url}/v1/jobs/{job_id}")
        assert status == 200, read
        assert read["id"] == job_id
        status, waited = await d.get(f"{b.url}/v1/jobs/{job_id}?wait=10")
        assert status == 200, waited
        assert waited["state"] == "succeeded", waited

        # (c) 1,000 unique jobs across both ingresses complete exactly once each
        async with BusTap.completions(d.bus) as tap:
            before = await d.calls()
            limit = asyncio.Semaphore(50)

            async def submit(i: int) -> str:
                async with limit:
                    return await d.submit((a, b)[i % 2], new_id(f"u{i}"))

            started = time.monotonic()
            ids = set(await asyncio.gather(*(submit(i) for i in range(UNIQUE_JOBS))))
            assert len(ids) == UNIQUE_JOBS
            states = await completed_once(tap, ids, timeout_s=240)
            print(f"{UNIQUE_JOBS} jobs on {broker}: {time.monotonic() - started:.1f} s")
            assert states == {"succeeded": UNIQUE_JOBS}, states
            assert await d.calls() - before == UNIQUE_JOBS
