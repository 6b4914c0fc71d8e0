"""A cut broker connection: the ingress refuses in bounded time, every process recovers alone.

The broker is reached through a proxy of the test's own, which the test cuts (it stops
listening and drops every connection) and reopens; RabbitMQ and Redis keep running.
"""

import asyncio
import time

from tests.support.bus_tap import BusTap
from tests.support.deployment import BOTH_BROKERS, completed_once, deployment
from tests.support.tcp_proxy import proxy_to
from tests.support.unique import new_id

QUEUED_WHILE_CUT = 20
CUT_S = 4.0


@BOTH_BROKERS
async def test_a_cut_broker_connection_at_submit_is_a_503_then_submits_work_again(
    broker: str,
) -> None:
    async with proxy_to(broker) as proxy, deployment(broker) as d:
        (worker,) = await d.workers(1)
        (ingress,) = await d.ingresses(
            1,
            {
                "PROMPTBUS_BROKER_URL": d.proxied_broker_url(proxy),
                "PROMPTBUS_PUBLISH_TIMEOUT_S": "1",
            },
        )
        url = f"{ingress.url}/v1/jobs"
        status, accepted = await d.post(url, {"model": "flash", "prompt": new_id("ok")})
        assert status == 202, accepted

        # When the proxy stops listening and cuts its connections
        await proxy.cut()
        started = time.monotonic()
        status, refused = await d.post(url, {"model": "flash", "prompt": new_id("cut")})

        # Then a submit answers 503 broker_unavailable within a few seconds, and records nothing
        assert time.monotonic() - started < 5
        assert status == 503, refused
        assert refused["error"]["type"] == "broker_unavailable", refused
        assert refused["error"]["retryable"] is True, refused
        status, listed = await d.get(f"{url}?limit=100")
        assert status == 200, listed
        assert [job["id"] for job in listed["data"]] == [accepted["id"]]

        # And once the proxy is back, submits work again and the job completes
        await proxy.open()
        deadline = time.monotonic() + 15
        while True:
            status, again = await d.post(url, {"model": "flash", "prompt": new_id("back")})
            if status == 202 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        assert status == 202, again
        status, done = await d.get(f"{url}/{again['id']}?wait=15")
        assert status == 200
        assert done["state"] == "succeeded", done
        assert worker.alive()


@BOTH_BROKERS
async def test_workers_reconnect_by_themselves_after_a_cut_broker_connection(
    broker: str,
) -> None:
    async with proxy_to(broker) as proxy, deployment(broker) as d:
        # Given two workers that reach the broker through the proxy, an ingress that does not
        workers = await d.workers(2, {"PROMPTBUS_BROKER_URL": d.proxied_broker_url(proxy)})
        (ingress,) = await d.ingresses(1)
        async with BusTap.completions(d.bus) as tap:
            warm_up = await d.submit(ingress, new_id("before"))
            await completed_once(tap, [warm_up], timeout_s=15, grace_s=0)

            # When the workers' broker connections are cut while jobs are queued
            await proxy.cut()
            ids = [await d.submit(ingress, new_id(f"queued{i}")) for i in range(QUEUED_WHILE_CUT)]
            await asyncio.sleep(CUT_S)
            assert not any(tap.for_job(job_id) for job_id in ids), "done while cut?"

            # and the proxy comes back
            await proxy.open()

            # Then the same worker processes run every job, exactly once
            states = await completed_once(tap, ids, timeout_s=45)
            assert states == {"succeeded": QUEUED_WHILE_CUT}, states
            assert all(w.alive() for w in workers)
            assert await d.calls() == QUEUED_WHILE_CUT + 1
