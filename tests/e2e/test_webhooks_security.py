"""Webhook security: Standard Webhooks signatures, secret rotation and the SSRF guard."""

import asyncio
import time
from contextlib import AsyncExitStack

import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from pipeline.webhooks.signing import new_secret, signed_headers
from pipeline.webhooks.ssrf import AddressPolicy, WebhookAddressRefused, check_url
from tests.support.settings import TEST_WEBHOOK_SECRET
from tests.support.webhook_flows import FAST, post_json, register, settled, submit, webhook_env
from tests.support.webhook_receivers import Received, counting_listener, receiving


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
