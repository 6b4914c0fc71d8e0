"""A tenant holding event streams open is limited to its own share of them: past
`sse_max_streams_per_tenant` it gets a 429, while other tenants and other requests are
served; a stream let go frees its slot."""

import contextlib

import aiohttp

from tests.support.gateway import Gateway, GatewayFactory
from tests.support.polling import poll
from tests.support.tenants import ADMIN_KEY, bearer, call, tenant_with_key
from tests.support.unique import new_id


async def _queued_job(gateway: Gateway, key: str) -> str:
    """A job that stays queued (no worker runs here): its event stream stays open."""
    body = {"model": "flash", "prompt": new_id("sse-slots")}
    reply = await call(gateway, "POST", "/v1/jobs", key=key, json=body)
    assert reply.status == 202, reply.body
    return str(reply.body["id"])


async def _open(
    stack: contextlib.AsyncExitStack, gateway: Gateway, key: str, job_id: str
) -> aiohttp.ClientResponse:
    return await stack.enter_async_context(
        gateway.session.get(f"{gateway.url}/v1/jobs/{job_id}/events", headers=bearer(key))
    )


async def test_event_streams_over_the_tenant_limit_are_429(start_gateway: GatewayFactory):
    # Given two tenants on a gateway allowing 2 event streams a tenant
    gateway = await start_gateway(admin_key=ADMIN_KEY, sse_max_streams_per_tenant=2)
    key_a, _ = await tenant_with_key(gateway, "acme")
    key_b, _ = await tenant_with_key(gateway, "globex")
    job_a, job_b = await _queued_job(gateway, key_a), await _queued_job(gateway, key_b)

    async with contextlib.AsyncExitStack() as stack:
        # When tenant acme holds 2 streams open and asks for a third
        held = [await _open(stack, gateway, key_a, job_a) for _ in range(2)]
        assert [resp.status for resp in held] == [200, 200]
        async with gateway.session.get(
            f"{gateway.url}/v1/jobs/{job_a}/events", headers=bearer(key_a)
        ) as refused:
            status, body = refused.status, await refused.json()
            retry_after = refused.headers.get("Retry-After")

        # Then the third is a 429 saying the limit; globex's stream and a plain request
        # are served as ever
        assert status == 429
        assert body["error"]["type"] == "rate_limited"
        assert "at most 2 event streams" in body["error"]["message"]
        assert retry_after == "5"
        other = await _open(stack, gateway, key_b, job_b)
        assert other.status == 200
        normal = await call(
            gateway, "POST", "/v1/generate", key=key_b, json={"model": "flash", "prompt": "hi"}
        )
        assert normal.status == 200, normal.body

        # And once acme lets one go, it may open another
        held[0].close()
        again = await _poll_open(gateway, key_a, job_a)
        assert again == 200


async def _poll_open(gateway: Gateway, key: str, job_id: str) -> int:
    """The status of a new stream, once the server has seen the closed one go."""

    async def attempt() -> int:
        async with gateway.session.get(
            f"{gateway.url}/v1/jobs/{job_id}/events", headers=bearer(key)
        ) as resp:
            return resp.status

    return await poll(attempt, lambda status: status == 200, timeout_s=5, what="a free slot")
