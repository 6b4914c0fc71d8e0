"""Watching a batch: counts on its record, its SSE, `batch.*` on the bus, a signed webhook."""

import json
from typing import Any

from tests.support.bus_tap import BusTap
from tests.support.polling import poll
from tests.support.sse import events
from tests.support.webhook_flows import FAST, register, webhook_env
from tests.support.webhook_receivers import receiving


def inline(n: int, delay_ms: int = 0) -> dict[str, Any]:
    requests = [
        {
            "custom_id": f"r{i}",
            "body": {"model": "flash", "prompt": f"p{i} [[emulator:delay={delay_ms}]]"},
        }
        for i in range(n)
    ]
    return {"endpoint": "/v1/generate", "completion_window": "24h", "requests": requests}


async def test_progress_reaches_the_record_sse_bus_and_a_signed_webhook() -> None:
    settings = {
        **FAST,
        "batch_slots": 1,
        "batch_chunk_size": 2,
        "batch_item_concurrency": 1,
        "batch_progress_interval_s": 0.2,
    }
    async with (
        webhook_env("memory", **settings) as env,
        receiving() as receiver,
        BusTap.completions(env.bus, "batch.progress", "batch.completed") as tap,
    ):
        # Given an endpoint subscribed to batch ends, and a batch of slow items
        endpoint_id, secret = await register(env, receiver.url, ["batch.completed"])
        created = await env.gateway.post_raw("/v1/batches", json.dumps(inline(8, 150)))
        assert created.status == 200, created.body
        batch_id = created.body["id"]

        # When its events are watched to the end
        async with env.session.get(f"{env.gateway.url}/v1/batches/{batch_id}/events") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/event-stream"
            seen = [event async for event in events(resp)]

        # Then the SSE showed counts moving, and ended with the end
        assert seen[-1].name == "batch.completed"
        assert seen[-1].data["request_counts"] == {"total": 8, "completed": 8, "failed": 0}
        progress = [
            e.data["request_counts"]["completed"] for e in seen if e.name == "batch.progress"
        ]
        assert progress == sorted(progress)
        assert len(set(progress)) >= 2

        # and the bus got progress (rate-limited: fewer than one per item) and the end
        async def keys() -> list[str]:
            return [d.routing_key for d in tap.deliveries]

        await poll(keys, lambda k: "batch.completed" in k, timeout_s=20, what="the bus's end")
        bodies = [d.body for d in tap.deliveries if d.body.get("batch_id") == batch_id]
        kinds = [b["type"] for b in bodies]
        assert kinds.count("batch.completed") == 1
        assert 1 <= kinds.count("batch.progress") < 8
        done = next(b for b in bodies if b["type"] == "batch.completed")
        assert done["schema"] == "promptbus.batch.finished/v1"
        assert done["output_file_id"] == seen[-1].data["output_file_id"]
        # and the tenant's webhook got the end, signed
        (request,) = await receiver.wait_for(1)
        event = request.verify(secret)
        assert (event["type"], event["batch_id"]) == ("batch.completed", batch_id)
        assert request.webhook_id == f"msg_{batch_id}.{endpoint_id}"
