"""Workers SIGKILLed mid-batch: every custom_id still gets exactly one line."""

import json
import signal
from typing import Any

from tests.support.deployment import BOTH_BROKERS
from tests.support.deployment import deployment as started
from tests.support.polling import poll
from tests.support.unique import new_id

VISIBILITY_S = 5
ENV = {
    "PROMPTBUS_REDIS_VISIBILITY_TIMEOUT_S": str(VISIBILITY_S),
    "PROMPTBUS_BATCH_CHUNK_SIZE": "5",
    "PROMPTBUS_BATCH_ITEM_CONCURRENCY": "2",
    "PROMPTBUS_BATCH_SLOTS": "2",
    "PROMPTBUS_BATCH_TENANT_SLOTS": "8",
    # A lane killed after claiming its next chunk but before queueing it leaves the batch to
    # the sweeper's re-drive, after this long without progress.
    "PROMPTBUS_JOB_STALL_S": "8",
    "PROMPTBUS_BATCH_SWEEP_INTERVAL_S": "1",
    # A killed worker's calls in flight leave their single-flight locks to expire before the
    # items run again (30 s by default): short here, still far above an item (250 ms).
    "PROMPTBUS_LOCK_TTL_S": "5",
}
ITEMS = 40
FINAL = ("completed", "failed", "expired", "cancelled")


def inline(tag: str) -> dict[str, Any]:
    requests = [
        {
            "custom_id": f"c{i}",
            "body": {"model": "flash", "prompt": f"{tag} {i} [[emulator:delay=250]]"},
        }
        for i in range(ITEMS)
    ]
    return {"endpoint": "/v1/generate", "completion_window": "24h", "requests": requests}


@BOTH_BROKERS
async def test_every_item_gets_one_line_though_the_workers_are_killed_mid_batch(
    broker: str,
) -> None:
    async with started(broker, ENV) as d:
        workers = await d.workers(2)
        (ingress,) = await d.ingresses(1)

        # Given a batch part-way through, on two workers
        status, batch = await d.post(f"{ingress.url}/v1/batches", inline(new_id("crash")))
        assert status == 200, batch
        url = f"{ingress.url}/v1/batches/{batch['id']}"

        async def counts() -> dict[str, int]:
            status, now = await d.get(url)
            assert status == 200, now
            found: dict[str, int] = now["request_counts"]
            return found

        await d.wait_calls(6, timeout_s=30)
        # When both workers are SIGKILLed, then a fresh one starts
        for worker in workers:
            worker.kill(signal.SIGKILL)
        before = await counts()
        assert before["completed"] < ITEMS, "finished before the kill: the test proves nothing"
        await d.workers(1)

        # Then the batch completes (on Redis after the visibility timeout) with every item once
        async def read() -> dict[str, Any]:
            _, now = await d.get(url)
            found: dict[str, Any] = now
            return found

        done = await poll(read, lambda b: b["status"] in FINAL, timeout_s=90, what="the end")
        assert done["status"] == "completed", done
        assert done["request_counts"] == {"total": ITEMS, "completed": ITEMS, "failed": 0}
        async with d.session.get(f"{ingress.url}/v1/files/{done['output_file_id']}/content") as r:
            lines = [json.loads(line) for line in (await r.read()).splitlines() if line]
        assert sorted(line["custom_id"] for line in lines) == sorted(f"c{i}" for i in range(ITEMS))
        assert done["error_file_id"] is None


async def test_a_prefork_worker_runs_batch_lanes_in_its_children() -> None:
    env = {**ENV, "PROMPTBUS_WORKER_POOL": "prefork", "PROMPTBUS_WORKER_CONCURRENCY": "2"}
    async with started("rabbitmq", env) as d:
        await d.workers(1)
        (ingress,) = await d.ingresses(1)
        status, batch = await d.post(f"{ingress.url}/v1/batches", inline(new_id("prefork")))
        assert status == 200, batch

        async def read() -> dict[str, Any]:
            _, now = await d.get(f"{ingress.url}/v1/batches/{batch['id']}")
            found: dict[str, Any] = now
            return found

        done = await poll(read, lambda b: b["status"] in FINAL, timeout_s=60, what="the end")
        assert done["status"] == "completed", done
        assert done["request_counts"] == {"total": ITEMS, "completed": ITEMS, "failed": 0}
        assert await d.calls() == ITEMS
