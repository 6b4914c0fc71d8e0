"""A key revoked through one gateway stops working in another on the same database, in bound.

Two gateways share one database (a SQLite file, or a PostgreSQL database), each with its
own key cache: the cache's TTL is the bound within which the other one stops taking it.
"""

from tests.support.gateway import GatewayFactory
from tests.support.polling import poll
from tests.support.tenants import ADMIN_KEY, FAST_TTL_S, admin, generate, tenant_with_key
from tests.support.unique import new_id


async def test_a_revoked_key_stops_working_in_every_gateway_within_the_ttl(
    start_gateway: GatewayFactory, database_url: str
) -> None:
    shared = {"database_url": database_url, "admin_key": ADMIN_KEY, "key_cache_ttl_s": FAST_TTL_S}
    one = await start_gateway(**shared)
    two = await start_gateway(**shared)
    # Given a key made through the first gateway, working on the second (cached there)
    key, key_id = await tenant_with_key(one, "acme")
    prompt = new_id("revoke me")
    await poll(
        lambda: generate(two.session, two.url, key, prompt),
        lambda r: r.status == 200,
        timeout_s=10 * FAST_TTL_S + 10,
        what="the key working on the second gateway",
    )
    assert (await generate(two.session, two.url, key, prompt)).status == 200

    # When it is revoked through the first
    revoked = await admin(one, "POST", f"/keys/{key_id}/revoke")
    assert revoked.status == 200
    assert revoked.body["revoked_at"] is not None

    # Then the first refuses it at once, and the second once its cached copy expires
    assert (await generate(one.session, one.url, key, prompt)).status == 401
    refused = await poll(
        lambda: generate(two.session, two.url, key, prompt),
        lambda r: r.status == 401,
        timeout_s=10 * FAST_TTL_S + 10,
        what="the revoked key refused by the second gateway",
    )
    assert refused.body["error"]["type"] == "unauthenticated"


async def test_last_used_is_recorded_off_the_request_path(
    start_gateway: GatewayFactory, database_url: str
) -> None:
    gateway = await start_gateway(database_url=database_url, admin_key=ADMIN_KEY)
    key, key_id = await tenant_with_key(gateway, "acme")
    listed = await admin(gateway, "GET", "/tenants/acme/keys")
    assert listed.body["data"][0]["last_used_at"] is None

    assert (await generate(gateway.session, gateway.url, key, "used")).status == 200

    used = await poll(
        lambda: admin(gateway, "GET", "/tenants/acme/keys"),
        lambda r: r.body["data"][0]["last_used_at"] is not None,
        timeout_s=20,
        what="last_used_at written",
    )
    assert used.body["data"][0]["id"] == key_id
