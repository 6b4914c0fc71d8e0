"""Webhooks end to end: real receivers on loopback, signatures, retries, SSRF, restart, replay.

Each test starts its own gateway (one embedded worker per process at a time) on a fresh bus,
mostly on the in-process memory broker; the restart test runs on RabbitMQ.
"""

import asyncio
import itertools
import json
import time
import uuid
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from pipeline.emulator import EmulatorConfig, start_emulator
from pipeline.webhooks.signing import new_secret, signed_headers
from pipeline.webhooks.ssrf import AddressPolicy, WebhookAddressRefused, check_url
from tests.conftest import TEST_WEBHOOK_SECRET, Emulator, Gateway, Reply
from tests.e2e.brokers import JobEnv, new_id, provisioned_bus, serving
from tests.e2e.webhook_receivers import (
    Answer,
    Received,
    counting_listener,
    poll,
    receiving,
    traced_publishes,
    webhook_env,
    webhook_stage_deleted,
)

TERMINAL = frozenset({"delivered", "failed", "refused"})
FAST_RETRIES = [0.2, 0.2]
# Gateways for these tests: short waits between attempts, a timeout well above a loopback reply.
FAST: dict[str, Any] = {"webhook_retry_schedule": FAST_RETRIES, "webhook_timeout": 5.0}
SETTLE_S = 15.0


def flash(prompt: str, **extra: Any) -> dict[str, Any]:
    return {"model": "flash", "prompt": prompt, **extra}


async def post_json(gateway: Gateway, path: str, body: Any = None) -> Reply:
    return await gateway.post_raw(path, json.dumps(body if body is not None else {}))


async def submit(env: JobEnv, *, webhook_url: str | None = None, prompt: str = "") -> str:
    """Submit a job (with its own webhook when `webhook_url` is given); its id."""
    body = flash(f"{new_id('webhook')} {prompt}")
    if webhook_url is not None:
        body["webhook"] = {"url": webhook_url}
    accepted = await env.submit(body)
    assert accepted.status == 202, accepted.body
    job_id: str = accepted.body["id"]
    return job_id


async def register(env: JobEnv, url: str, events: list[str] | None = None) -> tuple[str, str]:
    """Register an endpoint; its id and secret."""
    spec: dict[str, Any] = {"url": url, "description": "test receiver"}
    if events is not None:
        spec["events"] = events
    created = await post_json(env.gateway, "/v1/webhooks", spec)
    assert created.status == 201, created.body
    assert created.header("Location") == f"/v1/webhooks/{created.body['id']}"
    return created.body["id"], created.body["secret"]


async def attempts(env: JobEnv, job_id: str, message_id: str | None = None) -> list[dict[str, Any]]:
    """The job's recorded webhook attempts (of one message when `message_id` is given)."""
    reply = await env.get(f"/v1/jobs/{job_id}")
    assert reply.status == 200, reply.body
    found: list[dict[str, Any]] = reply.body.get("webhook_attempts", [])
    return [a for a in found if message_id is None or a["message_id"] == message_id]


async def settled(
    env: JobEnv, job_id: str, message_id: str | None = None, timeout_s: float = SETTLE_S
) -> list[dict[str, Any]]:
    """The attempts of one message, once the last of them ended it (delivered/failed/refused)."""
    message_id = message_id or f"msg_{job_id}"
    return await poll(
        lambda: attempts(env, job_id, message_id),
        lambda found: bool(found) and found[-1]["outcome"] in TERMINAL,
        timeout_s=timeout_s,
        what=f"a final attempt of {message_id}",
    )


async def finished(env: JobEnv, job_id: str) -> dict[str, Any]:
    """The job once it has finished."""
    reply = await env.wait_job(job_id, 20)
    assert reply.body["state"] in ("succeeded", "failed"), reply.body
    body: dict[str, Any] = reply.body
    return body


def assert_all_verify(received: list[Received], secret: str) -> None:
    for request in received:
        request.verify(secret)


# --- receivers -----------------------------------------------------------------------------


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


async def test_signatures_verify_only_with_the_right_secret_body_and_a_fresh_timestamp() -> None:
    async with webhook_env("memory", **FAST) as env, receiving() as receiver:
        # Given a delivered completion
        job_id = await submit(env, webhook_url=receiver.url)
        await settled(env, job_id)
        (request,) = receiver.received

        # Then it verifies with the tenant's secret
        assert request.verify(TEST_WEBHOOK_SECRET)["job_id"] == job_id

        # And not with another secret
        with pytest.raises(WebhookVerificationError):
            request.verify(new_secret())

        # And not once the body is changed
        tampered = Received(request.at, request.path, request.headers, request.body + b" ")
        with pytest.raises(WebhookVerificationError):
            tampered.verify(TEST_WEBHOOK_SECRET)
        altered = request.body.replace(b'"succeeded"', b'"failed"', 1)
        assert altered != request.body
        with pytest.raises(WebhookVerificationError):
            Received(request.at, request.path, request.headers, altered).verify(TEST_WEBHOOK_SECRET)

        # And not when signed properly but six minutes ago (beyond the 5 min tolerance)
        stale_at = int(time.time()) - 6 * 60
        stale = signed_headers([TEST_WEBHOOK_SECRET], request.webhook_id, stale_at, request.body)
        with pytest.raises(WebhookVerificationError, match="too old"):
            Received(request.at, request.path, stale, request.body).verify(TEST_WEBHOOK_SECRET)

        # While the same re-signing with the current time verifies (the control)
        fresh = signed_headers(
            [TEST_WEBHOOK_SECRET], request.webhook_id, int(time.time()), request.body
        )
        Received(request.at, request.path, fresh, request.body).verify(TEST_WEBHOOK_SECRET)


async def test_after_rotation_a_delivery_verifies_with_the_old_and_the_new_secret() -> None:
    async with webhook_env("memory", **FAST) as env, receiving() as receiver:
        # Given an endpoint whose secret was rotated
        endpoint_id, old_secret = await register(env, receiver.url)
        rotated = await post_json(env.gateway, f"/v1/webhooks/{endpoint_id}/rotate-secret")
        assert rotated.status == 200, rotated.body
        new = rotated.body["secret"]
        assert rotated.body["id"] == endpoint_id
        assert new.startswith("whsec_")
        assert new != old_secret

        # When a job completes
        job_id = await submit(env)
        found = await settled(env, job_id, f"msg_{job_id}.{endpoint_id}")
        assert found[-1]["outcome"] == "delivered"

        # Then the delivery carries two signatures
        (request,) = receiver.received
        assert request.webhook_id == f"msg_{job_id}.{endpoint_id}"
        assert len(request.signatures) == 2
        assert all(s.startswith("v1,") for s in request.signatures)

        # And it verifies with the old secret and with the new one, but not with others
        assert request.verify(old_secret)["job_id"] == job_id
        assert request.verify(new)["job_id"] == job_id
        for other in (new_secret(), TEST_WEBHOOK_SECRET):
            with pytest.raises(WebhookVerificationError):
                request.verify(other)


# --- SSRF ----------------------------------------------------------------------------------


async def test_internal_targets_are_refused_without_a_connection_when_private_is_off() -> None:
    policy = AddressPolicy.parse("false")
    async with (
        webhook_env("memory", webhook_allow_private="false", **FAST) as env,
        AsyncExitStack() as stack,
    ):
        # Given listeners on loopback (IPv6 too where it works) that count connections accepted
        listeners = [await stack.enter_async_context(counting_listener("127.0.0.1"))]
        v4 = listeners[0]
        urls = [f"http://127.0.0.1:{v4.port}/", f"http://[::ffff:127.0.0.1]:{v4.port}/"]
        try:
            v6 = await stack.enter_async_context(counting_listener("::1"))
        except OSError:
            pass  # no IPv6 loopback here: the IPv4 forms are still checked
        else:
            listeners.append(v6)
            urls.append(f"http://[::1]:{v6.port}/")
        urls += ["http://10.0.0.1/", "http://169.254.169.254/latest"]
        # (Safety first: the guard refuses every literal address here before any socket opens.)
        for url in urls:
            with pytest.raises(WebhookAddressRefused):
                check_url(url, policy)
        # And a name that resolves to loopback, which only the resolver can refuse
        urls.append(f"http://localhost:{v4.port}/")
        # And the counters do count (the control): a direct connection to each is seen
        for listener in listeners:
            _, writer = await asyncio.open_connection(listener.host, listener.port)
            writer.close()
            await writer.wait_closed()
            await listener.wait_accepted(1)

        # When jobs with those webhooks complete
        jobs = {url: await submit(env, webhook_url=url) for url in urls}

        # Then every delivery was refused at its first attempt, and none was retried
        for url, job_id in jobs.items():
            found = await settled(env, job_id)
            assert [(a["attempt"], a["outcome"]) for a in found] == [(0, "refused")], url
            assert found[0]["error"].startswith("refused: "), found[0]
            assert "status" not in found[0]

        # And no connection reached any listener beyond the control's
        assert [listener.accepted for listener in listeners] == [1] * len(listeners)

        # And registering an endpoint at an internal address is refused outright
        for url in (f"http://127.0.0.1:{v4.port}/", "http://10.0.0.1/", "http://169.254.169.254/"):
            refused = await post_json(env.gateway, "/v1/webhooks", {"url": url})
            assert refused.status == 422, (url, refused.body)
            assert refused.body["error"]["field"] == "url"
        listed = await env.get("/v1/webhooks")
        assert listed.body["data"] == []
        assert [listener.accepted for listener in listeners] == [1] * len(listeners)


# --- endpoints: events filter, replay, disabling --------------------------------------------


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
                    registry = gateway_b.runtime.webhooks
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
