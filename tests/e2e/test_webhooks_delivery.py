"""Webhook delivery outcomes: what each receiver behaviour leads to, retries included."""

import itertools
import time

import aiohttp

from pipeline.emulator import EmulatorConfig, start_emulator
from tests.support.bus import provisioned_bus
from tests.support.emulator import Emulator
from tests.support.gateway import serving
from tests.support.job_env import JobEnv
from tests.support.polling import poll
from tests.support.settings import TEST_WEBHOOK_SECRET
from tests.support.task_traces import traced_publishes
from tests.support.webhook_flows import (
    FAST,
    FAST_RETRIES,
    SETTLE_S,
    assert_all_verify,
    attempts,
    finished,
    register,
    settled,
    submit,
    webhook_env,
    webhook_stage_deleted,
)
from tests.support.webhook_receivers import Answer, receiving


async def test_a_receiver_answering_200_gets_the_signed_completion_once() -> None:
    async with webhook_env("memory", **FAST) as env, receiving() as receiver:
        # Given a receiver that answers 200
        # When a job with its own webhook completes
        job_id = await submit(env, webhook_url=receiver.url)

        # Then one attempt delivered it
        found = await settled(env, job_id)
        assert [(a["attempt"], a["outcome"], a["status"]) for a in found] == [(0, "delivered", 200)]
        assert found[0]["url"] == receiver.url
        assert "endpoint_id" not in found[0]
        assert found[0]["response_excerpt"] == "ok"

        # And the receiver got the completion event, signed with the tenant's secret
        (request,) = receiver.received
        assert request.webhook_id == f"msg_{job_id}"
        assert request.headers["content-type"] == "application/json"
        event = request.verify(TEST_WEBHOOK_SECRET)
        job = await finished(env, job_id)
        assert event["schema"] == "promptbus.completion/v1"
        assert (event["job_id"], event["state"]) == (job_id, "succeeded")
        assert event["result"] == job["result"]


async def test_500_twice_then_200_is_one_delivery_made_in_three_attempts() -> None:
    async with (
        webhook_env("memory", **FAST) as env,
        receiving(Answer(500), Answer(503)) as receiver,
    ):
        # Given a receiver that fails twice with 5xx, then answers 200
        # When a job with its own webhook completes
        job_id = await submit(env, webhook_url=receiver.url)

        # Then one message was tried three times, the last time delivered
        found = await settled(env, job_id)
        assert [(a["attempt"], a["status"], a["outcome"]) for a in found] == [
            (0, 500, "retrying"),
            (1, 503, "retrying"),
            (2, 200, "delivered"),
        ]
        assert {a["message_id"] for a in found} == {f"msg_{job_id}"}
        assert [a["next_attempt_in_s"] for a in found[:2]] == FAST_RETRIES
        assert "next_attempt_in_s" not in found[2]

        # And every attempt carried the same webhook-id, each properly signed
        received = receiver.received
        assert [r.webhook_id for r in received] == [f"msg_{job_id}"] * 3
        assert_all_verify(received, TEST_WEBHOOK_SECRET)
        # And the retries waited (at least) the schedule's waits
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(received)]
        assert all(gap >= 0.19 for gap in gaps), gaps


async def test_a_receiver_slower_than_the_timeout_is_retried() -> None:
    async with (
        webhook_env("memory", webhook_retry_schedule=FAST_RETRIES, webhook_timeout=0.5) as env,
        receiving(Answer(hold_s=10)) as receiver,
    ):
        # Given a receiver that holds its first answer past the 0.5 s timeout
        # When a job with its own webhook completes
        job_id = await submit(env, webhook_url=receiver.url)

        # Then the first attempt timed out and the retry was delivered
        first, second = await settled(env, job_id)
        assert first["outcome"] == "retrying"
        assert first["error"] == "timed out"
        assert "status" not in first
        assert first["duration_ms"] >= 450
        assert (second["attempt"], second["outcome"], second["status"]) == (1, "delivered", 200)

        # And the receiver saw the same message twice
        assert [r.webhook_id for r in receiver.received] == [f"msg_{job_id}"] * 2
        assert_all_verify(receiver.received, TEST_WEBHOOK_SECRET)


async def test_a_receiver_trickling_its_answer_is_cut_off_by_the_timeout() -> None:
    async with (
        webhook_env("memory", webhook_retry_schedule=FAST_RETRIES, webhook_timeout=0.5) as env,
        receiving(Answer(body=b"slow answer", trickle_s=1.0)) as receiver,
    ):
        # Given a receiver that sends its status and headers at once, then its body a byte
        # a second (11 s in all)
        # When a job with its own webhook completes, while another caller asks the gateway
        job_id = await submit(env, webhook_url=receiver.url)
        found = await settled(env, job_id)
        normal = await env.gateway.generate({"model": "flash", "prompt": "meanwhile"})

        # Then the first attempt timed out within the 0.5 s total timeout, not the trickle's
        # 11 s, and was retried as the schedule says; the retry (answered at once) delivered
        first, second = found
        assert (first["outcome"], first["error"]) == ("retrying", "timed out")
        assert 450 <= first["duration_ms"] < 2000
        assert first["next_attempt_in_s"] == FAST_RETRIES[0]
        assert (second["attempt"], second["outcome"], second["status"]) == (1, "delivered", 200)
        assert normal.status == 200, normal.body


async def test_retry_after_on_429_stretches_the_wait_beyond_the_schedule() -> None:
    async with (
        webhook_env("memory", **FAST) as env,
        receiving(Answer(429, headers={"Retry-After": "1"})) as receiver,
    ):
        # Given a receiver that first answers 429 with Retry-After: 1 (the schedule says 0.2 s)
        # When a job with its own webhook completes
        job_id = await submit(env, webhook_url=receiver.url)

        # Then the retry was planned a second out, not 0.2 s
        first, second = await settled(env, job_id)
        assert (first["status"], first["outcome"]) == (429, "retrying")
        assert first["next_attempt_in_s"] >= 1.0
        assert second["outcome"] == "delivered"

        # And the receiver saw the retry at least about a second after the first attempt
        early, late = receiver.received
        assert late.at - early.at >= 0.95, late.at - early.at
        assert late.webhook_id == early.webhook_id == f"msg_{job_id}"
        assert_all_verify(receiver.received, TEST_WEBHOOK_SECRET)


async def test_410_gone_disables_the_endpoint_for_later_completions() -> None:
    async with webhook_env("memory", **FAST) as env, receiving(then=Answer(410)) as receiver:
        # Given an endpoint whose receiver answers 410 Gone
        endpoint_id, secret = await register(env, receiver.url)

        with traced_publishes() as published:
            # When a job of the tenant completes
            first_job = await submit(env)

            # Then it was scheduled for the endpoint, and its one attempt failed, not retried
            found = await settled(env, first_job, f"msg_{first_job}.{endpoint_id}")
            scheduled = published.for_job(first_job)
            assert [(p.endpoint_id, p.attempt) for p in scheduled] == [(endpoint_id, 0)]
            assert [(a["status"], a["outcome"]) for a in found] == [(410, "failed")]
            (request,) = receiver.received
            request.verify(secret)

            # And the endpoint is disabled, saying why
            endpoint = await env.get(f"/v1/webhooks/{endpoint_id}")
            assert endpoint.status == 200
            assert endpoint.body["disabled_at"] is not None
            assert "410" in endpoint.body["disabled_reason"]
            listed = await env.get("/v1/webhooks")
            assert [(e["id"], e["disabled_at"]) for e in listed.body["data"]] == [
                (endpoint_id, endpoint.body["disabled_at"])
            ]
            assert "secret" not in endpoint.body

            # When another job completes
            second_job = await submit(env)
            await finished(env, second_job)

            # Then nothing was scheduled for the disabled endpoint, and nothing reached it
            assert published.for_job(second_job) == []
            assert len(receiver.received) == 1


async def test_a_redirect_is_not_followed_and_fails_the_delivery() -> None:
    async with (
        webhook_env("memory", **FAST) as env,
        receiving() as target,
        receiving(then=Answer(302, headers={"Location": target.url})) as redirecting,
    ):
        # Given a receiver that redirects to another loopback receiver
        # When a job with its own webhook completes
        job_id = await submit(env, webhook_url=redirecting.url)

        # Then the attempt failed at once with the 302, and was not retried
        found = await settled(env, job_id)
        assert [(a["status"], a["outcome"]) for a in found] == [(302, "failed")]
        assert len(redirecting.received) == 1
        redirecting.received[0].verify(TEST_WEBHOOK_SECRET)

        # And the redirect's target got nothing
        assert target.received == []


async def test_a_large_response_is_read_only_in_part_and_still_delivered() -> None:
    big = b"x" * (1024 * 1024)
    async with webhook_env("memory", **FAST) as env, receiving(then=Answer(body=big)) as receiver:
        # Given a receiver that answers 200 with a 1 MiB body
        # When a job with its own webhook completes
        job_id = await submit(env, webhook_url=receiver.url)

        # Then the delivery counts, and only a short excerpt of the answer is kept
        (found,) = await settled(env, job_id)
        assert (found["status"], found["outcome"]) == (200, "delivered")
        assert 0 < len(found["response_excerpt"]) <= 256
        assert set(found["response_excerpt"]) == {"x"}
        assert len(receiver.received) == 1


async def test_retries_follow_the_whole_schedule_then_fail() -> None:
    schedule = [0.05, 0.05, 0.05, 0.05, 0.05]
    async with (
        webhook_env("memory", webhook_retry_schedule=schedule, webhook_timeout=5.0) as env,
        receiving(then=Answer(500)) as receiver,
    ):
        # Given a receiver that always answers 500, and a schedule of five waits
        # When a job with its own webhook completes
        job_id = await submit(env, webhook_url=receiver.url)

        # Then it was tried once plus once per wait, and the last attempt failed
        found = await settled(env, job_id)
        assert [a["attempt"] for a in found] == [0, 1, 2, 3, 4, 5]
        assert [a["outcome"] for a in found] == ["retrying"] * 5 + ["failed"]
        assert [r.webhook_id for r in receiver.received] == [f"msg_{job_id}"] * 6


# --- signatures ----------------------------------------------------------------------------


async def test_a_pending_retry_is_delivered_by_the_next_gateway_on_rabbitmq() -> None:
    retry_s = 3.0
    with provisioned_bus("rabbitmq") as bus, webhook_stage_deleted(bus):
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            receiving(Answer(500)) as receiver,
        ):
            emulator = await start_emulator(EmulatorConfig(), host="127.0.0.1", port=0)
            try:
                settings = {
                    **bus.overrides(),
                    "embedded_worker": True,
                    "gemini_base_url": emulator.base_url,
                    "webhook_retry_schedule": [retry_s],
                    "webhook_timeout": 5.0,
                }
                # Given gateway A, whose first attempt to deliver a job's completion got a 500
                async with serving(session, **settings) as gateway_a:
                    env_a = JobEnv(bus, gateway_a, Emulator(emulator, session), session)
                    job_id = await submit(env_a, webhook_url=receiver.url)
                    (first,) = await poll(
                        lambda: attempts(env_a, job_id),
                        bool,
                        timeout_s=SETTLE_S,
                        what="the first attempt",
                    )
                    assert (first["status"], first["outcome"]) == (500, "retrying")
                    assert first["next_attempt_in_s"] == retry_s

                # When A stops before the retry is due
                assert time.time() - first["at"] < retry_s, "A stopped too late for this test"
                assert len(receiver.received) == 1

                # And gateway B starts on the same broker and bus
                async with serving(session, **settings) as gateway_b:
                    # Then the receiver gets the retry, with the same webhook-id, from B
                    early, late = await receiver.wait_for(2, timeout_s=retry_s + 15)
                    assert late.webhook_id == early.webhook_id == f"msg_{job_id}"
                    assert late.verify(TEST_WEBHOOK_SECRET)["job_id"] == job_id
                    assert late.at - early.at >= retry_s - 0.05
                    registry = gateway_b.services.backends.webhooks
                    made_by_b = await poll(
                        lambda: registry.attempts_for_job(job_id),
                        bool,
                        timeout_s=SETTLE_S,
                        what="B's attempt recorded",
                    )
                    assert [(a.attempt, a.status, a.outcome.value) for a in made_by_b] == [
                        (1, 200, "delivered")
                    ]
                    assert len(receiver.received) == 2
            finally:
                await emulator.stop()
