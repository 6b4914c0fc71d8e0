"""The admin API: tenants, keys and budget rows, for the admin key only; bad input is a 4xx."""

from tests.support.gateway import GatewayFactory
from tests.support.polling import poll
from tests.support.tenants import ADMIN_KEY, admin, call, generate, tenant_with_key
from tests.support.unique import new_id


async def test_tenants_are_created_listed_read_updated_and_disabled(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(admin_key=ADMIN_KEY)

    created = await admin(gateway, "POST", "/tenants", {"id": "acme", "name": "Acme Inc"})
    again = await admin(gateway, "POST", "/tenants", {"id": "acme"})
    renamed = await admin(gateway, "PATCH", "/tenants/acme", {"name": "Acme"})
    disabled = await admin(gateway, "POST", "/tenants/acme/disable")
    read = await admin(gateway, "GET", "/tenants/acme")
    listed = await admin(gateway, "GET", "/tenants")

    assert created.status == 201
    assert created.header("Location") == "/v1/admin/tenants/acme"
    assert again.status == 409
    assert again.body["error"]["type"] == "conflict"
    assert renamed.body["name"] == "Acme"
    assert disabled.body["disabled"] is True
    assert read.body == disabled.body
    assert [t["id"] for t in listed.body["data"]] == ["acme"]
    assert (await admin(gateway, "GET", "/tenants/nobody")).status == 404


async def test_a_key_is_shown_once_listed_by_prefix_and_revoked(
    start_gateway: GatewayFactory,
) -> None:
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    await admin(gateway, "POST", "/tenants", {"id": "acme"})

    created = await admin(
        gateway,
        "POST",
        "/tenants/acme/keys",
        {"name": "ci", "allowed_models": ["flash"], "rpm": 10, "tpm": 1000},
    )
    listed = await admin(gateway, "GET", "/tenants/acme/keys")

    assert created.status == 201
    key = created.body["key"]
    assert key.startswith("pb_")
    assert key.startswith(created.body["prefix"])
    (entry,) = listed.body["data"]
    assert "key" not in entry
    assert key not in str(listed.body)
    assert {k: entry[k] for k in ("id", "name", "allowed_models", "rpm", "tpm")} == {
        "id": created.body["id"],
        "name": "ci",
        "allowed_models": ["flash"],
        "rpm": 10,
        "tpm": 1000,
    }
    assert entry["revoked_at"] is None

    revoked = await admin(gateway, "POST", f"/keys/{entry['id']}/revoke")
    assert revoked.status == 200
    assert revoked.body["revoked_at"] is not None
    assert (await admin(gateway, "POST", "/keys/key_nope/revoke")).status == 404
    assert (await generate(gateway.session, gateway.url, key, "revoked")).status == 401


async def test_budget_rows_are_created_listed_and_deleted(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    _, key_id = await tenant_with_key(gateway, "acme")

    daily = await admin(gateway, "POST", "/tenants/acme/budgets", {"period": "day", "limit_usd": 5})
    keyed = await admin(
        gateway,
        "POST",
        "/tenants/acme/budgets",
        {"period": "month", "limit_usd": 50, "key_id": key_id, "soft_ratio": 0.9},
    )
    twice = await admin(gateway, "POST", "/tenants/acme/budgets", {"period": "day", "limit_usd": 9})

    assert (daily.status, keyed.status, twice.status) == (201, 201, 409)
    listed = await admin(gateway, "GET", "/tenants/acme/budgets")
    assert [(b["period"], b["key_id"], b["limit_usd"]) for b in listed.body["data"]] == [
        ("day", None, 5.0),
        ("month", key_id, 50.0),
    ]
    deleted = await admin(gateway, "DELETE", f"/tenants/acme/budgets/{daily.body['id']}")
    assert deleted.status == 204
    assert (
        await admin(gateway, "DELETE", f"/tenants/acme/budgets/{daily.body['id']}")
    ).status == 404
    after = await admin(gateway, "GET", "/tenants/acme/budgets")
    assert [b["id"] for b in after.body["data"]] == [keyed.body["id"]]


async def test_bad_admin_input_is_a_4xx_and_changes_nothing(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    await admin(gateway, "POST", "/tenants", {"id": "acme"})

    cases = [
        ("POST", "/tenants", {"id": "has space"}),
        ("POST", "/tenants", {"id": "x", "extra": 1}),
        ("POST", "/tenants", {}),
        ("PATCH", "/tenants/acme", {"disabled": "maybe"}),
        ("POST", "/tenants/acme/keys", {"rpm": 0}),
        ("POST", "/tenants/acme/keys", {"allowed_models": []}),
        ("POST", "/tenants/acme/budgets", {"period": "week", "limit_usd": 5}),
        ("POST", "/tenants/acme/budgets", {"period": "day", "limit_usd": -1}),
        ("POST", "/tenants/acme/budgets", {"period": "day", "limit_usd": 1, "key_id": "key_x"}),
    ]
    for method, path, body in cases:
        reply = await admin(gateway, method, path, body)
        assert reply.status == 422, (path, body, reply.body)
        assert reply.body["error"]["type"] == "validation_error"
    malformed = await call(
        gateway,
        "POST",
        "/v1/admin/tenants",
        key=ADMIN_KEY,
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status in (400, 415)

    assert [t["id"] for t in (await admin(gateway, "GET", "/tenants")).body["data"]] == ["acme"]
    assert (await admin(gateway, "GET", "/tenants/acme")).body["disabled"] is False
    assert (await admin(gateway, "GET", "/tenants/acme/keys")).body["data"] == []
    assert (await admin(gateway, "GET", "/tenants/acme/budgets")).body["data"] == []


async def test_only_the_admin_key_may_use_the_admin_api(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    tenant_key, _ = await tenant_with_key(gateway, "acme")

    missing = await call(gateway, "GET", "/v1/admin/tenants")
    wrong = await call(gateway, "GET", "/v1/admin/tenants", key="not-the-admin-key")
    tenant = await call(gateway, "GET", "/v1/admin/tenants", key=tenant_key)
    creating = await call(gateway, "POST", "/v1/admin/tenants", key=tenant_key, json={"id": "x"})

    assert (missing.status, wrong.status, tenant.status, creating.status) == (401, 401, 403, 403)
    assert missing.body["error"]["type"] == "unauthenticated"
    assert tenant.body["error"]["type"] == "permission_denied"
    assert [t["id"] for t in (await admin(gateway, "GET", "/tenants")).body["data"]] == ["acme"]


async def test_with_no_admin_key_set_the_admin_api_is_off(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway()

    reply = await call(gateway, "POST", "/v1/admin/tenants", key="guess", json={"id": "x"})

    assert reply.status == 403
    assert "PROMPTBUS_ADMIN_KEY" in reply.body["error"]["message"]


async def test_a_keys_budget_row_holds_that_key_only(start_gateway: GatewayFactory) -> None:
    # Given two keys of one tenant, the first with a budget it spends on its first miss
    gateway = await start_gateway(admin_key=ADMIN_KEY, budget_rules_ttl_s=0.1)
    spender, spender_id = await tenant_with_key(gateway, "acme")
    other, _ = await tenant_with_key(gateway, "acme")
    budget = {"period": "day", "limit_usd": 1e-9, "key_id": spender_id}
    assert (await admin(gateway, "POST", "/tenants/acme/budgets", budget)).status == 201

    first = await generate(gateway.session, gateway.url, spender, "spend it")
    refused = await poll(
        lambda: generate(gateway.session, gateway.url, spender, new_id("more")),
        lambda r: r.status != 200,
        timeout_s=10,
        what="the key's budget refusing it",
    )

    # Then that key is refused past its budget, and the tenant's other key is not
    assert first.status == 200
    assert refused.status == 429
    assert refused.body["error"]["type"] == "budget_exceeded"
    assert (await generate(gateway.session, gateway.url, other, new_id("free"))).status == 200


async def test_a_keys_budget_row_holds_its_jobs_too(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(admin_key=ADMIN_KEY, budget_rules_ttl_s=0.1, embedded_worker=True)
    spender, spender_id = await tenant_with_key(gateway, "acme")
    budget = {"period": "day", "limit_usd": 1e-9, "key_id": spender_id}
    assert (await admin(gateway, "POST", "/tenants/acme/budgets", budget)).status == 201

    async def job() -> dict[str, object]:
        body = {"model": "flash", "prompt": new_id("job spend")}
        accepted = await call(gateway, "POST", "/v1/jobs", key=spender, json=body)
        assert accepted.status == 202
        assert accepted.body["key_id"] == spender_id
        done = await call(gateway, "GET", f"/v1/jobs/{accepted.body['id']}?wait=30", key=spender)
        result: dict[str, object] = done.body
        return result

    first = await job()
    refused = await poll(job, lambda j: j["state"] != "succeeded", timeout_s=20, what="refusal")

    assert first["state"] == "succeeded"
    assert refused["state"] == "failed"
    assert refused["error"]["type"] == "budget_exceeded"  # type: ignore[index]


async def test_every_admin_route_refuses_a_tenant_key(start_gateway: GatewayFactory) -> None:
    # Given a tenant's key, and the admin routes as the OpenAPI document lists them
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    tenant_key, key_id = await tenant_with_key(gateway, "acme")
    document = (await call(gateway, "GET", "/openapi.json")).body
    routes = [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith("/v1/admin/")
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(routes) >= 8, routes

    # Then each refuses it with a 403 (whatever the body), and changes nothing
    for method, template in routes:
        path = template.replace("{tenant_id}", "acme").replace("{key_id}", key_id)
        path = path.replace("{budget_id}", "1")
        reply = await call(gateway, method, path, key=tenant_key, json={"id": "x", "name": "n"})
        assert reply.status == 403, (method, path, reply.body)
        assert reply.body["error"]["type"] == "permission_denied"
    listed = await admin(gateway, "GET", "/tenants/acme/keys")
    assert [k["id"] for k in listed.body["data"]] == [key_id]
    assert [t["id"] for t in (await admin(gateway, "GET", "/tenants")).body["data"]] == ["acme"]
