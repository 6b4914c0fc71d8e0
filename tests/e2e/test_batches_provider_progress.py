"""Watching a provider batch: its SSE, `batch.*` on the bus and a signed webhook, as for a
gateway batch."""

import json

import pytest

from tests.support.bus import BROKERS
from tests.support.bus_tap import BusTap
from tests.support.polling import poll
from tests.support.sse import events
from tests.support.webhook_flows import FAST, register, webhook_env
from tests.support.webhook_receivers import receiving

FAST_POLL = {"gemini_batch_poll_initial_s": 0.05, "gemini_batch_poll_max_s": 0.2}


@pytest.mark.parametrize("broker", BROKERS)
async def test_a_provider_batch_tells_its_end_on_sse_the_bus_and_a_signed_webhook(
    broker: str,
) -> None:
    # (On each broker: a step's next poll waits there, as a countdown.)
    settings = {**FAST, **FAST_POLL, "batch_progress_interval_s": 0.2}
    async with (
        webhook_env(broker, **settings) as env,
        receiving() as receiver,
        BusTap.completions(env.bus, "batch.progress", "batch.completed") as tap,
    ):
        # Given an endpoint subscribed to batch ends, and a provider batch
        endpoint_id, secret = await register(env, receiver.url, ["batch.completed"])
        requests = [
            {"custom_id": f"r{i}", "body": {"model": "flash", "prompt": f"watched {i}"}}
            for i in range(3)
        ]
        body = {"endpoint": "/v1/generate", "completion_window": "24h", "mode": "provider"}
        created = await env.gateway.post_raw(
            "/v1/batches", json.dumps({**body, "requests": requests})
        )
        assert created.status == 200, created.body
        batch_id = created.body["id"]

        # When its events are watched to the end
        async with env.session.get(f"{env.gateway.url}/v1/batches/{batch_id}/events") as resp:
            assert resp.status == 200
            seen = [event async for event in events(resp)]

        # Then the SSE ended with the end and its counts
        assert seen[-1].name == "batch.completed"
        assert seen[-1].data["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
        assert seen[-1].data["mode"] == "provider"

        # and the bus got the end once, with the counts moved by the job's answers
        async def mine() -> list[dict[str, object]]:
            return [d.body for d in tap.deliveries if d.body.get("batch_id") == batch_id]

        bodies = await poll(
            mine,
            lambda b: any(x["type"] == "batch.completed" for x in b),
            timeout_s=20,
            what="the bus's end",
        )
        kinds = [b["type"] for b in bodies]
        assert kinds.count("batch.completed") == 1
        assert kinds.count("batch.progress") == 1

        # and the tenant's webhook got the end, signed
        (request,) = await receiver.wait_for(1)
        event = request.verify(secret)
        assert (event["type"], event["batch_id"]) == ("batch.completed", batch_id)
        assert request.webhook_id == f"msg_{batch_id}.{endpoint_id}"
