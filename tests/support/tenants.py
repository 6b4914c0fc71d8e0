"""Tenants, keys and budgets for tests, made through a running gateway."""

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiohttp
from multidict import CIMultiDict
from sqlalchemy import insert

from pipeline.db.tables import Budget, Tenant
from schemas import DEFAULT_TENANT
from tests.support.gateway import Gateway, Reply

# The admin key test gateways are given (never a real one).
ADMIN_KEY = "admin-test-key-0123456789"
# A short cache TTL, so that revocation tests wait little.
FAST_TTL_S = 0.5


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for `key`."""
    return {"Authorization": f"Bearer {key}"}


async def call(
    gateway: Gateway,
    method: str,
    path: str,
    *,
    key: str | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """One request to the gateway with `key` as a Bearer token (None: no key)."""
    sent = dict(headers or {})
    if key is not None:
        sent.update(bearer(key))
    async with gateway.session.request(method, gateway.url + path, json=json, headers=sent) as resp:
        body = await resp.read()
        parsed = await resp.json(content_type=None) if body else None
        return Reply(resp.status, parsed, CIMultiDict(resp.headers))


async def admin(gateway: Gateway, method: str, path: str, json: Any = None) -> Reply:
    """An admin API call with the admin key."""
    return await call(gateway, method, "/v1/admin" + path, key=ADMIN_KEY, json=json)


async def tenant_with_key(gateway: Gateway, tenant: str, **limits: Any) -> tuple[str, str]:
    """Create `tenant` (if new) and a key of it with `limits`; (key, key id)."""
    made = await admin(gateway, "POST", "/tenants", {"id": tenant})
    assert made.status in (201, 409), made.body
    created = await admin(gateway, "POST", f"/tenants/{tenant}/keys", {"name": "t", **limits})
    assert created.status == 201, created.body
    return created.body["key"], created.body["id"]


async def generate(
    session: aiohttp.ClientSession, url: str, key: str | None, prompt: str, **extra: Any
) -> Reply:
    """POST /v1/generate on `url` with `key`."""
    headers = bearer(key) if key else {}
    body = {"model": "flash", "prompt": prompt, **extra}
    async with session.post(url + "/v1/generate", json=body, headers=headers) as resp:
        return Reply(resp.status, await resp.json(content_type=None), CIMultiDict(resp.headers))


async def set_budget(gateway: Gateway, limit_usd: float, rules_ttl_s: float) -> None:
    """A daily budget of `limit_usd` (soft threshold half of it) for tenant `default`, in the
    gateway's database; returns once every gateway re-read its rules (`rules_ttl_s`)."""
    now = datetime.now(UTC)
    async with gateway.services.database.begin() as connection:
        await connection.execute(
            insert(Tenant).values(id=DEFAULT_TENANT, name="default", created_at=now, disabled=False)
        )
        await connection.execute(
            insert(Budget).values(
                tenant_id=DEFAULT_TENANT,
                key_id=None,
                period="day",
                limit_usd=limit_usd,
                soft_ratio=0.5,
                created_at=now,
            )
        )
    await asyncio.sleep(rules_ttl_s * 2)
