"""The key database going away: cached keys go on for the TTL, then lookups fail closed (503)."""

from tests.support.databases import postgres_database
from tests.support.gateway import GatewayFactory
from tests.support.polling import poll
from tests.support.tcp_proxy import Proxy
from tests.support.tenants import ADMIN_KEY, FAST_TTL_S, generate, tenant_with_key
from tests.support.unique import new_id

POSTGRES = ("127.0.0.1", 5432)


async def test_keys_fail_closed_while_the_database_is_away_and_work_when_it_is_back(
    start_gateway: GatewayFactory,
) -> None:
    async with postgres_database() as url:
        # Given a gateway whose PostgreSQL is reached through a proxy of the test's own
        proxy = Proxy(POSTGRES)
        await proxy.open()
        try:
            proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
            gateway = await start_gateway(
                database_url=proxied, admin_key=ADMIN_KEY, key_cache_ttl_s=FAST_TTL_S
            )
            key, _ = await tenant_with_key(gateway, "acme")
            prompt = new_id("db away")
            assert (await generate(gateway.session, gateway.url, key, prompt)).status == 200

            # When the database goes away
            await proxy.cut()

            # Then, once the cached grant has expired, the key is refused with a retryable 503
            # (never let through unchecked)
            refused = await poll(
                lambda: generate(gateway.session, gateway.url, key, prompt),
                lambda r: r.status != 200,
                timeout_s=10 * FAST_TTL_S + 20,
                what="lookups failing closed",
            )
            assert refused.status == 503
            assert refused.body["error"]["type"] == "keys_unavailable"
            assert refused.body["error"]["retryable"] is True

            # And when it is back, the key works again
            await proxy.open()
            await poll(
                lambda: generate(gateway.session, gateway.url, key, prompt),
                lambda r: r.status == 200,
                timeout_s=30,
                what="the key working again",
            )
        finally:
            await proxy.cut()
