"""A broker connection gone silent: no reset, no bytes. Heartbeats notice it, processes recover.

A NAT or firewall that drops its state, or a frozen network path, closes nothing: each end
just stops hearing from the other. The test's proxy stands in for that path and freezes
every connection it carries (bytes stop both ways, the sockets stay open) while it still
forwards new connections, as a fresh path to the broker would.
"""

import json
import time
from datetime import datetime

from tests.support.bus_tap import BusTap
from tests.support.deployment import BOTH_BROKERS, completed_once, deployment
from tests.support.processes import Proc
from tests.support.tcp_proxy import proxy_to
from tests.support.unique import new_id

HEARTBEAT_S = 2
# A silent connection is noticed within two heartbeats (py-amqp's rule; on Redis, a reply
# overdue by one bound), closed without waiting on it, and reopened at once.
NOTICED_WITHIN_S = 2 * HEARTBEAT_S + 1
# Then the queued jobs run: room for them on a busy 2-core machine.
RECOVERY_BOUND_S = 3 * HEARTBEAT_S + 8
PUBLISH_TIMEOUT_S = 1
QUEUED_WHILE_SILENT = 10
# More silent spells than an ingress has publishing threads (4): none may be held for ever.
SILENT_SPELLS = 5
# Kombu's Redis transport pops a message (BRPOP) before delivering it: a message that arrives
# while a BRPOP sent before the path froze is still pending is popped into the void. That
# lasts at most Kombu's BRPOP timeout (1 s); RabbitMQ requeues what it could not deliver.
# On Redis a task message that a BRPOP pending at the freeze popped is lost (Kombu pops before
# it holds): the sweeper re-drives its job once it has not moved for this long. RabbitMQ
# requeues what it could not deliver, so its jobs need no sweeper (the default bound).
STALL_S = {"rabbitmq": 300, "redis": 4}


@BOTH_BROKERS
async def test_a_worker_whose_broker_connections_go_silent_runs_new_jobs_without_a_restart(
    broker: str,
) -> None:
    async with proxy_to(broker) as proxy, deployment(broker) as d:
        # Given a worker that reaches the broker through the proxy, with a 2 s heartbeat,
        # and an ingress that does not
        (worker,) = await d.workers(
            1,
            {
                "PROMPTBUS_BROKER_URL": d.proxied_broker_url(proxy),
                "PROMPTBUS_BROKER_HEARTBEAT_S": str(HEARTBEAT_S),
                "PROMPTBUS_PUBLISH_TIMEOUT_S": str(PUBLISH_TIMEOUT_S),
                "PROMPTBUS_JOB_STALL_S": str(STALL_S[broker]),
            },
        )
        (ingress,) = await d.ingresses(1)
        async with BusTap.completions(d.bus) as tap:
            # and that has run a job, so its consumers, publishers and pools hold connections
            warm_up = await d.submit(ingress, new_id("before"))
            await completed_once(tap, [warm_up], timeout_s=15, grace_s=0)

            # When every one of its broker connections goes silent
            frozen = await proxy.freeze()
            assert frozen >= 2, f"only {frozen} connections to freeze"  # the bridge, Celery

            # and jobs are submitted meanwhile
            frozen_at = time.monotonic()
            ids = [
                await d.submit(ingress, new_id(f"silent{i}")) for i in range(QUEUED_WHILE_SILENT)
            ]

            # Then the same worker process notices within a few heartbeats, reconnects and
            # runs every job, exactly once
            states = await _completed_once(
                tap,
                ids,
                worker,
                bound_s=RECOVERY_BOUND_S + (STALL_S[broker] if broker == "redis" else 0),
            )
            assert states == {"succeeded": QUEUED_WHILE_SILENT}, states
            noticed_s = _first_reconnect(worker.log()) - (
                time.time() - (time.monotonic() - frozen_at)
            )
            assert noticed_s < NOTICED_WITHIN_S, f"the bridge noticed after {noticed_s:.1f} s"
            assert worker.alive()
            assert await d.calls() == QUEUED_WHILE_SILENT + 1, worker.log()[-6000:]


@BOTH_BROKERS
async def test_a_silent_broker_connection_at_submit_is_a_503_then_the_next_submit_reconnects(
    broker: str,
) -> None:
    async with proxy_to(broker) as proxy, deployment(broker) as d:
        # Given an ingress that reaches the broker through the proxy and has submitted a job
        await d.workers(1)
        (ingress,) = await d.ingresses(
            1,
            {
                "PROMPTBUS_BROKER_URL": d.proxied_broker_url(proxy),
                "PROMPTBUS_PUBLISH_TIMEOUT_S": str(PUBLISH_TIMEOUT_S),
            },
        )
        url = f"{ingress.url}/v1/jobs"
        status, first = await d.post(url, {"model": "flash", "prompt": new_id("ok")})
        assert status == 202, first
        accepted = [first["id"]]

        for spell in range(SILENT_SPELLS):
            # When its broker connection goes silent
            frozen = await proxy.freeze()
            assert frozen >= 1, f"spell {spell}: the ingress held no broker connection"
            started = time.monotonic()
            status, refused = await d.post(url, {"model": "flash", "prompt": new_id("silent")})
            waited_s = time.monotonic() - started

            # Then the submit answers 503 broker_unavailable at the publish bound
            assert status == 503, (spell, refused)
            assert refused["error"]["type"] == "broker_unavailable", refused
            assert refused["error"]["retryable"] is True, refused
            assert waited_s < PUBLISH_TIMEOUT_S + 2, f"spell {spell}: 503 after {waited_s:.1f} s"

            # And the next submit opens a fresh connection (the path takes new ones)
            status, again = await d.post(url, {"model": "flash", "prompt": new_id("again")})
            assert status == 202, (spell, again)
            accepted.append(again["id"])

        # Then nothing was recorded for a refused submit, and every accepted job completes
        status, listed = await d.get(f"{url}?limit=100")
        assert status == 200, listed
        assert sorted(job["id"] for job in listed["data"]) == sorted(accepted)
        for job_id in accepted:
            status, done = await d.get(f"{url}/{job_id}?wait=15")
            assert status == 200, done
            assert done["state"] == "succeeded", done


async def _completed_once(
    tap: BusTap, ids: list[str], worker: Proc, *, bound_s: float
) -> dict[str | None, int]:
    """`completed_once` within `bound_s`, with the worker's log when it fails."""
    try:
        return dict(await completed_once(tap, ids, timeout_s=bound_s))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nworker log tail:\n{worker.log()[-4000:]}") from None


def _first_reconnect(log: str) -> float:
    """When the worker's bridge first said it lost the broker (Unix time, from its JSON log)."""
    for line in log.splitlines():
        if "bridge lost the broker" in line:
            stamp = json.loads(line)["timestamp"].replace("Z", "+00:00")
            return datetime.fromisoformat(stamp).timestamp()
    raise AssertionError(f"the bridge never noticed; log tail:\n{log[-3000:]}")
