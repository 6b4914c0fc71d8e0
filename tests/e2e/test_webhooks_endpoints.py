"""Registered webhook endpoints: event filters, replay, and disabling a failing endpoint."""

import uuid

from tests.support.polling import poll
from tests.support.task_traces import traced_publishes
from tests.support.unique import new_id
from tests.support.webhook_flows import (
    FAST,
    SETTLE_S,
    attempts,
    finished,
    post_json,
    register,
    settled,
    submit,
    webhook_env,
)
from tests.support.webhook_receivers import Answer, receiving


async def test_an_endpoint_gets_only_the_events_it_subscribed_to() -> None:
    async with webhook_env("memory", **FAST) as env, receiving() as receiver:
        # Given an endpoint subscribed to failures only
        endpoint_id, secret = await register(env, receiver.url, ["completion.failed"])

        with traced_publishes() as published:
            # When one job succeeds and another fails upstream
            ok_job = await submit(env)
            failed_job = await submit(env, prompt="[[emulator:status=400]]")
            assert (await finished(env, ok_job))["state"] == "succeeded"
            assert (await finished(env, failed_job))["state"] == "failed"

            # Then the failure was delivered to it
            found = await settled(env, failed_job, f"msg_{failed_job}.{endpoint_id}")
            assert found[-1]["outcome"] == "delivered"
            (request,) = receiver.received
            event = request.verify(secret)
            assert (event["job_id"], event["state"]) == (failed_job, "failed")
            assert event["error"]["type"]

            assert [(p.endpoint_id, p.attempt) for p in published.for_job(failed_job)] == [
                (endpoint_id, 0)
            ]

            # And the success was never scheduled for it (all deliveries are scheduled before
            # a job is recorded as finished)
            assert published.for_job(ok_job) == []
            assert await attempts(env, ok_job) == []


async def test_replay_redelivers_the_same_message_and_refuses_unknowns() -> None:
    async with webhook_env("memory", **FAST) as env, receiving() as receiver:
        # Given an endpoint that received a job's completion
        endpoint_id, secret = await register(env, receiver.url)
        job_id = await submit(env)
        message_id = f"msg_{job_id}.{endpoint_id}"
        await settled(env, job_id, message_id)
        (original,) = await receiver.wait_for(1)

        # When the job is replayed to the endpoint
        replayed = await post_json(env.gateway, f"/v1/webhooks/{endpoint_id}/replay/{job_id}")

        # Then it is accepted, and the receiver gets the message again, with the same id
        assert replayed.status == 202, replayed.body
        assert replayed.body == {
            "message_id": message_id,
            "job_id": job_id,
            "endpoint_id": endpoint_id,
        }
        _, again = await receiver.wait_for(2)
        assert again.webhook_id == original.webhook_id == message_id
        replay_event, original_event = again.verify(secret), original.verify(secret)
        for key in ("job_id", "correlation_id", "state", "result"):
            assert replay_event[key] == original_event[key], key

        # And the endpoint's attempts show two first attempts, both delivered
        log = await poll(
            lambda: env.get(f"/v1/webhooks/{endpoint_id}/attempts"),
            lambda reply: len(reply.body["data"]) == 2,
            timeout_s=SETTLE_S,
            what="two recorded attempts",
        )
        assert [(a["attempt"], a["outcome"]) for a in log.body["data"]] == [
            (0, "delivered"),
            (0, "delivered"),
        ]

        # And replaying an unknown job, or to an unknown endpoint, is 404
        unknown_job = await post_json(
            env.gateway, f"/v1/webhooks/{endpoint_id}/replay/{new_id('job_unknown')}"
        )
        unknown_endpoint = await post_json(
            env.gateway, f"/v1/webhooks/ep_{uuid.uuid4().hex}/replay/{job_id}"
        )
        assert (unknown_job.status, unknown_endpoint.status) == (404, 404)
        assert len(receiver.received) == 2


async def test_an_endpoint_failing_for_the_disable_period_is_disabled() -> None:
    settings = {
        "webhook_retry_schedule": [0.2] * 8,
        "webhook_disable_after_s": 0.5,
        "webhook_timeout": 5.0,
    }
    async with webhook_env("memory", **settings) as env, receiving(then=Answer(500)) as receiver:
        # Given an endpoint that always answers 500, and a disable period of half a second
        endpoint_id, _ = await register(env, receiver.url)

        with traced_publishes() as published:
            # When a job completes and its delivery keeps failing
            job_id = await submit(env)

            # Then the endpoint is disabled once it has failed for the period
            endpoint = await poll(
                lambda: env.get(f"/v1/webhooks/{endpoint_id}"),
                lambda reply: reply.body["disabled_at"] is not None,
                timeout_s=SETTLE_S,
                what="the endpoint disabled",
            )
            assert endpoint.body["disabled_reason"]
            assert endpoint.body["failing_since"] <= endpoint.body["disabled_at"]
            assert endpoint.body["disabled_at"] - endpoint.body["failing_since"] >= 0.5

            # And the delivery ends without further requests to the endpoint
            found = await settled(env, job_id, f"msg_{job_id}.{endpoint_id}")
            assert found[-1]["outcome"] == "failed"
            assert len(receiver.received) == len([a for a in found if "status" in a])
            assert all(a["status"] == 500 for a in found if "status" in a)
            assert [p.attempt for p in published.for_job(job_id)] == [a["attempt"] for a in found]

            # When another job completes
            later_job = await submit(env)
            await finished(env, later_job)

            # Then nothing is scheduled for the disabled endpoint
            assert published.for_job(later_job) == []
            assert await attempts(env, later_job) == []


# --- restart on RabbitMQ --------------------------------------------------------------------
