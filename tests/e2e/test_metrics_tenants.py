"""Spend by tenant from API keys, and who may read /metrics once keys are required."""

from tests.support.gateway import GatewayFactory
from tests.support.metrics import parse
from tests.support.tenants import ADMIN_KEY, bearer, call, generate, tenant_with_key
from tests.support.unique import new_id

TOKENS = "promptbus_tokens_total"


async def test_each_tenants_spend_is_counted_under_its_name_for_the_admin_only(
    start_gateway: GatewayFactory,
) -> None:
    # Given two tenants with a key each (so keys are now required)
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    acme, _ = await tenant_with_key(gateway, "acme")
    globex, _ = await tenant_with_key(gateway, "globex")

    # When each asks for an answer of its own
    answers = {}
    for tenant, key in (("acme", acme), ("globex", globex)):
        reply = await generate(gateway.session, gateway.url, key, new_id(tenant))
        assert reply.status == 200, reply.body
        answers[tenant] = reply.body

    # Then a tenant's key may not read /metrics (it names every tenant), nor may no key
    refused = await call(gateway, "GET", "/metrics", key=acme)
    assert refused.status == 403, refused.body
    assert "admin key" in refused.body["error"]["message"]
    assert (await call(gateway, "GET", "/metrics")).status == 401

    # And with the admin key, each tenant's tokens and cost are under its own name
    async with gateway.session.get(gateway.url + "/metrics", headers=bearer(ADMIN_KEY)) as resp:
        assert resp.status == 200
        scraped = parse(await resp.text())
    assert scraped.label_values(TOKENS, "tenant") == {"acme", "globex"}
    for tenant, body in answers.items():
        usage = body["usage"]
        assert scraped.value(TOKENS, tenant=tenant, token_type="input") == usage["input_tokens"]
        assert scraped.value("promptbus_cost_usd_total", tenant=tenant) == body["cost"]["total_usd"]
