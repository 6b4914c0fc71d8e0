"""A gateway with its embedded worker stops promptly on every broker, after doing work.

Its own module: one embedded Celery worker per process at a time (Kombu's event-loop hub
is process-wide), and the other job modules keep theirs for the whole module.
"""

import asyncio
import time

import pytest

from tests.support.bus import BROKERS
from tests.support.job_env import job_env
from tests.support.unique import new_id

STOP_BOUND_S = 8.0


@pytest.mark.parametrize("broker", BROKERS)
async def test_a_gateway_with_its_worker_stops_promptly_after_a_job(broker: str) -> None:
    # Given a gateway whose worker has run a job on the broker
    async with asyncio.timeout(30):
        async with job_env(broker) as env:
            accepted = await env.submit({"model": "flash", "prompt": new_id("lifecycle")})
            done = await env.wait_job(accepted.body["id"], 10)
            assert done.body["state"] == "succeeded", done.body

            # When it stops (the end of this block)
            started = time.monotonic()

    # Then it stopped within the bound (the worker does not wait for ever on its connection)
    assert time.monotonic() - started < STOP_BOUND_S
