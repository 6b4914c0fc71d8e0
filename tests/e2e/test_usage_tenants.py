"""Usage with real API keys, on SQLite and PostgreSQL: each request is recorded for its key's
tenant and key id, a tenant's key sees its own usage only, and the admin key sees all."""

from datetime import UTC, datetime

from tests.support.gateway import GatewayFactory
from tests.support.ledger import flushed, usage_rows
from tests.support.tenants import ADMIN_KEY, call, generate, tenant_with_key
from tests.support.unique import new_id


async def test_two_tenants_keys_see_their_own_usage_and_the_admin_sees_both(
    start_gateway: GatewayFactory, database_url: str
) -> None:
    # Given two tenants with a key each
    gateway = await start_gateway(
        admin_key=ADMIN_KEY, database_url=database_url, ledger_flush_interval_s=0.05
    )
    acme, acme_id = await tenant_with_key(gateway, "acme")
    globex, globex_id = await tenant_with_key(gateway, "globex")

    # When acme asks twice (a miss, then a hit) and globex once
    prompt = new_id("acme")
    for _ in range(2):
        assert (await generate(gateway.session, gateway.url, acme, prompt)).status == 200
    assert (await generate(gateway.session, gateway.url, globex, new_id("globex"))).status == 200
    await flushed(gateway.services.ledger)

    # Then each request is one row, under its key's tenant and key id
    rows = await usage_rows(gateway.services.database)
    assert sorted((r["tenant"], r["key_id"]) for r in rows) == sorted(
        [("acme", acme_id), ("acme", acme_id), ("globex", globex_id)]
    )

    # And each key sees its own tenant's usage, and may not ask for another's
    today = datetime.now(UTC).date().isoformat()
    query = f"/v1/usage?from={today}&to={today}&group_by=tenant,key"
    mine = await call(gateway, "GET", query, key=acme)
    assert mine.status == 200, mine.body
    assert [
        (s["tenant"], s["key"], s["requests"], s["cache_hits"]) for s in mine.body["series"]
    ] == [("acme", acme_id, 2, 1)]
    theirs = await call(gateway, "GET", query + "&tenant=globex", key=acme)
    assert theirs.status == 403
    assert (await call(gateway, "GET", query)).status == 401

    # And the admin key sees both, or one
    every = await call(gateway, "GET", query, key=ADMIN_KEY)
    assert [(s["tenant"], s["requests"]) for s in every.body["series"]] == [
        ("acme", 2),
        ("globex", 1),
    ]
    one = await call(gateway, "GET", query + "&tenant=globex", key=ADMIN_KEY)
    assert one.body["totals"]["requests"] == 1
