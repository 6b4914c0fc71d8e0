"""A batch never starves the rest: jobs and sync callers are served while it runs."""

import json
import time

from tests.support.emulator import Emulator
from tests.support.gateway import GatewayFactory
from tests.support.polling import poll
from tests.support.unique import new_id

# The bound a sync call keeps while the batch runs (a cache miss to the local emulator).
SYNC_BOUND_S = 1.0


async def test_jobs_and_sync_calls_are_served_while_a_batch_holds_its_share(
    start_gateway: GatewayFactory, emulator: Emulator
):
    # Given a worker of two threads, batches allowed one of them, and a batch of four lanes
    # of slow items (three lanes bounce off the worker's share and wait on the broker)
    gateway = await start_gateway(
        embedded_worker=True,
        worker_concurrency=2,
        batch_worker_slots=1,
        batch_slots=4,
        batch_chunk_size=5,
        batch_item_concurrency=1,
    )
    tag = new_id("fair")
    requests = [
        {
            "custom_id": f"c{i}",
            "body": {"model": "flash", "prompt": f"{tag} {i} [[emulator:delay=100]]"},
        }
        for i in range(40)
    ]
    body = {"endpoint": "/v1/generate", "completion_window": "24h", "requests": requests}
    created = await gateway.post_raw("/v1/batches", json.dumps(body))
    assert created.status == 200, created.body
    batch_url = f"/v1/batches/{created.body['id']}"
    await poll(
        lambda: gateway.get(batch_url),
        lambda r: r.body["request_counts"]["completed"] >= 1,
        timeout_s=20,
        what="the batch under way",
    )

    # When a job and sync calls come in meanwhile
    accepted = await gateway.post_raw("/v1/jobs", json.dumps({"model": "flash", "prompt": tag}))
    assert accepted.status == 202, accepted.body
    took = []
    for n in range(10):
        started = time.perf_counter()
        reply = await gateway.generate({"model": "flash", "prompt": f"{tag} sync {n}"})
        took.append(time.perf_counter() - started)
        assert reply.status == 200, reply.body
    job = await gateway.get(f"/v1/jobs/{accepted.body['id']}?wait=20")

    # Then the job finished while the batch was still running, and sync calls kept their bound
    assert job.body["state"] == "succeeded", job.body
    during = await gateway.get(batch_url)
    assert during.body["status"] == "in_progress", during.body
    assert max(took) < SYNC_BOUND_S, took
    # and the batch still completes, every item once
    done = await poll(
        lambda: gateway.get(batch_url),
        lambda r: r.body["status"] in ("completed", "failed", "expired", "cancelled"),
        timeout_s=60,
        what="the batch's end",
    )
    assert done.body["status"] == "completed"
    assert done.body["request_counts"] == {"total": 40, "completed": 40, "failed": 0}
