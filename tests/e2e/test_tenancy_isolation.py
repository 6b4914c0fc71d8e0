"""Two tenants, two keys: neither sees the other's cache entries, jobs or webhook endpoints."""

import asyncio
from typing import Any

import aiohttp
from multidict import CIMultiDict
from standardwebhooks.webhooks import WebhookVerificationError

from tests.support.emulator import Emulator
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.polling import poll
from tests.support.sse import Stream, events
from tests.support.tenants import ADMIN_KEY, bearer, call, generate, tenant_with_key
from tests.support.unique import new_id
from tests.support.webhook_receivers import receiving


async def two_tenants(start_gateway: GatewayFactory, **settings: Any) -> tuple[Gateway, str, str]:
    gateway = await start_gateway(admin_key=ADMIN_KEY, **settings)
    acme, _ = await tenant_with_key(gateway, "acme")
    beta, _ = await tenant_with_key(gateway, "beta")
    return gateway, acme, beta


async def test_a_tenant_never_gets_anothers_cache_entry(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway, acme, beta = await two_tenants(start_gateway)
    prompt = new_id("shared prompt")

    # When acme asks twice, then beta asks the same
    first = await generate(gateway.session, gateway.url, acme, prompt)
    again = await generate(gateway.session, gateway.url, acme, prompt)
    other = await generate(gateway.session, gateway.url, beta, prompt)

    # Then acme's second is its own hit, and beta's is a miss of its own
    assert [r.header("X-Cache") for r in (first, again, other)] == ["MISS", "HIT", "MISS"]
    assert await emulator.calls() == 2
    assert other.body["id"] != first.body["id"]


async def test_identical_requests_of_two_tenants_are_not_coalesced(
    start_gateway: GatewayFactory, emulator: Emulator
) -> None:
    gateway, acme, beta = await two_tenants(start_gateway)
    prompt = f"{new_id('together')} [[emulator:delay=300]]"

    # When both tenants send the same slow request at once, five times each
    replies = await asyncio.gather(
        *(generate(gateway.session, gateway.url, key, prompt) for key in [acme, beta] * 5)
    )

    # Then each tenant's callers shared one call, and the tenants did not share theirs
    assert [r.status for r in replies] == [200] * 10
    assert await emulator.calls() == 2
    assert len({r.body["id"] for r in replies[0::2]}) == 1
    assert len({r.body["id"] for r in replies[1::2]}) == 1
    assert replies[0].body["id"] != replies[1].body["id"]


async def test_a_tenant_cannot_get_list_cancel_or_watch_anothers_job(
    start_gateway: GatewayFactory,
) -> None:
    gateway, acme, beta = await two_tenants(start_gateway, embedded_worker=True)
    # Given a job of acme's that runs a while
    body = {"model": "flash", "prompt": f"{new_id('job')} [[emulator:delay=1500]]"}
    accepted = await call(gateway, "POST", "/v1/jobs", key=acme, json=body)
    assert accepted.status == 202, accepted.body
    job_id = accepted.body["id"]

    # Then to beta it does not exist: get, long-poll, cancel and SSE are 404s, as for no job
    for method, path in (
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}?wait=5"),
        ("DELETE", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/events"),
    ):
        reply = await call(gateway, method, path, key=beta)
        assert reply.status == 404, (method, path, reply.body)
        assert reply.body["error"]["type"] == "job_not_found"
    unknown = await call(gateway, "GET", "/v1/jobs/job_nope", key=beta)
    assert unknown.body["error"] == {**reply.body["error"], "message": "no job 'job_nope'"}
    # And beta's listing does not show it, while acme's does
    beta_jobs = await call(gateway, "GET", "/v1/jobs", key=beta)
    acme_jobs = await call(gateway, "GET", "/v1/jobs", key=acme)
    assert [j["id"] for j in beta_jobs.body["data"]] == []
    assert [j["id"] for j in acme_jobs.body["data"]] == [job_id]

    # And beta's cancel changed nothing: acme's SSE runs to the job's success
    stream = await _sse(gateway.session, gateway.url + f"/v1/jobs/{job_id}/events", acme)
    assert stream.status == 200
    assert stream.events[-1].name == "succeeded"
    done = await call(gateway, "GET", f"/v1/jobs/{job_id}", key=acme)
    assert done.body["state"] == "succeeded"


async def _sse(session: aiohttp.ClientSession, url: str, key: str) -> Stream:
    async with session.get(url, headers=bearer(key)) as resp:
        stream = Stream(resp.status, CIMultiDict(resp.headers))
        stream.events = [event async for event in events(resp)]
        return stream


async def test_a_tenant_cannot_see_or_touch_anothers_webhook_endpoints(
    start_gateway: GatewayFactory,
) -> None:
    gateway, acme, beta = await two_tenants(start_gateway)
    # Given an endpoint of acme's
    spec = {"url": "http://127.0.0.1:9/hook", "description": "acme's"}
    created = await call(gateway, "POST", "/v1/webhooks", key=acme, json=spec)
    assert created.status == 201, created.body
    endpoint_id = created.body["id"]
    assert created.body["tenant"] == "acme"

    # Then beta cannot read, rotate, list or delete it
    path = f"/v1/webhooks/{endpoint_id}"
    for method, suffix in (
        ("GET", ""),
        ("GET", "/attempts"),
        ("POST", "/rotate-secret"),
        ("DELETE", ""),
    ):
        reply = await call(gateway, method, path + suffix, key=beta)
        assert reply.status == 404, (method, suffix, reply.body)
    listed = await call(gateway, "GET", "/v1/webhooks", key=beta)
    assert listed.body["data"] == []

    # And acme still has it, with its secret unchanged (a rotation would have made a new one)
    mine = await call(gateway, "GET", "/v1/webhooks", key=acme)
    assert [e["id"] for e in mine.body["data"]] == [endpoint_id]
    rotated = await call(gateway, "POST", path + "/rotate-secret", key=acme)
    assert rotated.status == 200
    assert rotated.body["secret"] != created.body["secret"]


async def test_jobs_and_hits_of_the_default_tenant_stay_apart_from_keyed_tenants(
    start_gateway: GatewayFactory,
) -> None:
    # Given a job made while no keys existed (tenant default)
    gateway = await start_gateway(admin_key=ADMIN_KEY, embedded_worker=True)
    body = {"model": "flash", "prompt": new_id("before keys")}
    accepted = await call(gateway, "POST", "/v1/jobs", json=body)
    assert accepted.status == 202
    job_id = accepted.body["id"]
    await poll(
        lambda: call(gateway, "GET", f"/v1/jobs/{job_id}"),
        lambda r: r.body["state"] == "succeeded",
        timeout_s=30,
        what="the default tenant's job",
    )

    # When keys come in
    acme, _ = await tenant_with_key(gateway, "acme")

    # Then acme does not see the default tenant's job
    assert (await call(gateway, "GET", f"/v1/jobs/{job_id}", key=acme)).status == 404


async def test_each_tenants_per_job_webhooks_are_signed_with_its_own_secret(
    start_gateway: GatewayFactory,
) -> None:
    gateway, acme, beta = await two_tenants(start_gateway, embedded_worker=True)
    acme_secret = (await call(gateway, "GET", "/v1/webhook-secret", key=acme)).body["secret"]
    beta_secret = (await call(gateway, "GET", "/v1/webhook-secret", key=beta)).body["secret"]
    assert acme_secret != beta_secret

    async with receiving() as receiver:
        # When each tenant's job reports to a webhook of its own
        job_of = {}
        for key, secret in ((acme, acme_secret), (beta, beta_secret)):
            body = {"model": "flash", "prompt": new_id("signed"), "webhook": {"url": receiver.url}}
            accepted = await call(gateway, "POST", "/v1/jobs", key=key, json=body)
            assert accepted.status == 202
            job_of[secret] = [accepted.body["id"]]
        first, second = await receiver.wait_for(2)

    # Then each delivery verifies under its tenant's secret, and not under the other's
    by_secret: dict[str, list[str]] = {}
    for delivery in (first, second):
        for secret in (acme_secret, beta_secret):
            try:
                delivery.verify(secret)
            except WebhookVerificationError:
                continue
            by_secret.setdefault(secret, []).append(delivery.event()["job_id"])
    assert by_secret == job_of
