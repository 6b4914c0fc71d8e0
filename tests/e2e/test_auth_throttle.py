"""Key guessing is slowed down: an address that sent too many bad keys waits, others do not."""

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.support.gateway import Gateway, GatewayFactory
from tests.support.tenants import ADMIN_KEY, bearer, tenant_with_key

ASK = {"model": "flash", "prompt": "hello"}
CHAT = {"model": "flash", "messages": [{"role": "user", "content": "hello"}]}
GEMINI = {"contents": [{"parts": [{"text": "hello"}]}]}
LIMITS = {"auth_failures_max": 3, "auth_failure_window_s": 60.0, "auth_cooldown_s": 30.0}


@pytest.fixture
async def guesser() -> AsyncIterator[aiohttp.ClientSession]:
    """A client on another loopback address (127.0.0.2), as a second machine would be."""
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), force_close=True)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as client:
        yield client


async def post(
    client: aiohttp.ClientSession,
    gateway: Gateway,
    path: str,
    body: object,
    headers: dict[str, str],
) -> tuple[int, dict[str, object], "aiohttp.typedefs.LooseHeaders"]:
    async with client.post(gateway.url + path, json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def test_after_n_bad_keys_an_address_gets_429s_in_each_apis_shape(
    start_gateway: GatewayFactory, guesser: aiohttp.ClientSession
) -> None:
    # Given a gateway with a tenant's key, and a client at 127.0.0.2 guessing keys
    gateway = await start_gateway(admin_key=ADMIN_KEY, **LIMITS)
    key, _ = await tenant_with_key(gateway, "acme")
    # A missing key is no guess: it is a 401 and is not counted
    for _ in range(5):
        assert (await post(guesser, gateway, "/v1/generate", ASK, {}))[0] == 401

    # When it sends three bad keys (on any surface), each a 401
    for path, body in (("/v1/generate", ASK), ("/v1/chat/completions", CHAT)):
        assert (await post(guesser, gateway, path, body, bearer("pb_guess")))[0] == 401
    gemini_path = "/v1beta/models/flash:generateContent"
    status, _, _ = await post(guesser, gateway, gemini_path, GEMINI, {"x-goog-api-key": "guess"})
    assert status == 401

    # Then every further request from it is a 429 with Retry-After, even with a valid key
    status, body, headers = await post(guesser, gateway, "/v1/generate", ASK, bearer(key))
    assert status == 429
    assert body["error"]["type"] == "too_many_failed_authentications"  # type: ignore[index]
    assert 1 <= int(headers["Retry-After"]) <= 30
    status, body, headers = await post(guesser, gateway, "/v1/chat/completions", CHAT, bearer(key))
    assert status == 429
    assert body["error"]["code"] == "too_many_failed_authentications"  # type: ignore[index]
    assert headers["x-should-retry"] == "false"
    assert 1 <= int(headers["retry-after"]) <= 30
    status, body, headers = await post(
        guesser, gateway, gemini_path, GEMINI, {"x-goog-api-key": key}
    )
    assert status == 429
    assert body["error"]["status"] == "RESOURCE_EXHAUSTED"  # type: ignore[index]
    assert 1 <= int(headers["Retry-After"]) <= 30
    async with guesser.get(gateway.url + "/v1/admin/tenants", headers=bearer(ADMIN_KEY)) as resp:
        assert resp.status == 429

    # And a caller with a valid key at another address (127.0.0.1) is not slowed at all
    for path, body in (("/v1/generate", ASK), ("/v1/chat/completions", CHAT)):
        assert (await post(gateway.session, gateway, path, body, bearer(key)))[0] == 200
    # nor is one there that sends a bad key now and then
    assert (await post(gateway.session, gateway, "/v1/generate", ASK, bearer("pb_x")))[0] == 401
    # And the probes stay open to everyone
    async with guesser.get(gateway.url + "/healthz") as resp:
        assert resp.status == 200


async def test_bad_admin_keys_count_and_the_cool_down_ends(
    start_gateway: GatewayFactory, guesser: aiohttp.ClientSession
) -> None:
    # Given a one-second cool-down
    gateway = await start_gateway(admin_key=ADMIN_KEY, **(LIMITS | {"auth_cooldown_s": 1.0}))
    key, _ = await tenant_with_key(gateway, "acme")

    # When 127.0.0.2 guesses the admin key three times (a tenant's key there is no guess)
    async with guesser.get(gateway.url + "/v1/admin/tenants", headers=bearer(key)) as resp:
        assert resp.status == 403
    for _ in range(3):
        async with guesser.get(gateway.url + "/v1/admin/tenants", headers=bearer("x")) as resp:
            assert resp.status == 401

    # Then it must wait
    assert (await post(guesser, gateway, "/v1/generate", ASK, bearer(key)))[0] == 429
    # And once the cool-down is over its valid key works again
    await asyncio.sleep(1.2)
    assert (await post(guesser, gateway, "/v1/generate", ASK, bearer(key)))[0] == 200


async def test_with_the_throttle_off_bad_keys_stay_401s(
    start_gateway: GatewayFactory, guesser: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(admin_key=ADMIN_KEY, **(LIMITS | {"auth_failures_max": 0}))
    await tenant_with_key(gateway, "acme")
    statuses = {
        (await post(guesser, gateway, "/v1/generate", ASK, bearer("pb_guess")))[0]
        for _ in range(10)
    }
    assert statuses == {401}
