"""The admin routes: tenants (create, list, get, update, disable), keys, budget rows.

Every change is made in the database, then this process forgets what it cached, so it
acts on the change at once; other processes do within the key cache's TTL.
"""

import asyncio

from aiohttp import web

from pipeline.errors import NotFound
from pipeline.ingress.admin._common import answer, body_of, tenancy_of
from schemas.tenancy import (
    BudgetCreate,
    BudgetList,
    KeyCreate,
    KeyList,
    TenantCreate,
    TenantList,
    TenantUpdate,
)

DISABLE = TenantUpdate(disabled=True)


async def post_tenant(request: web.Request) -> web.Response:
    """Create a tenant: 201."""
    tenancy = tenancy_of(request)
    spec = await body_of(request, TenantCreate)
    tenant = await asyncio.shield(tenancy.store.create_tenant(spec))
    tenancy.directory.changed()
    response = answer(tenant, status=201)
    response.headers["Location"] = f"/v1/admin/tenants/{tenant.id}"
    return response


async def list_tenants(request: web.Request) -> web.Response:
    """Every tenant."""
    tenants = await tenancy_of(request).store.tenants()
    return answer(TenantList(data=tuple(tenants)))


async def get_tenant(request: web.Request) -> web.Response:
    """One tenant."""
    tenant_id = request.match_info["tenant_id"]
    tenant = await tenancy_of(request).store.tenant(tenant_id)
    if tenant is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    return answer(tenant)


async def patch_tenant(request: web.Request) -> web.Response:
    """Change a tenant's name, or disable (or enable) it."""
    tenancy_of(request)
    return await _update(request, await body_of(request, TenantUpdate))


async def disable_tenant(request: web.Request) -> web.Response:
    """Disable a tenant: its keys stop working (within the key cache's TTL everywhere)."""
    tenancy_of(request)
    return await _update(request, DISABLE)


async def _update(request: web.Request, change: TenantUpdate) -> web.Response:
    tenancy = tenancy_of(request)
    tenant = await asyncio.shield(
        tenancy.store.update_tenant(request.match_info["tenant_id"], change)
    )
    tenancy.directory.changed()
    return answer(tenant)


async def post_key(request: web.Request) -> web.Response:
    """Make a key for a tenant: 201 with the key itself, shown this once."""
    tenancy = tenancy_of(request)
    spec = await body_of(request, KeyCreate)
    created = await asyncio.shield(tenancy.store.create_key(request.match_info["tenant_id"], spec))
    tenancy.directory.changed()
    return answer(created, status=201)


async def list_keys(request: web.Request) -> web.Response:
    """A tenant's keys: ids, names, prefixes, times and limits; never the keys."""
    keys = await tenancy_of(request).store.keys(request.match_info["tenant_id"])
    return answer(KeyList(data=tuple(keys)))


async def revoke_key(request: web.Request) -> web.Response:
    """Revoke a key (again: no change): it stops working within the key cache's TTL."""
    tenancy = tenancy_of(request)
    key = await asyncio.shield(tenancy.store.revoke_key(request.match_info["key_id"]))
    tenancy.directory.changed()
    return answer(key)


async def post_budget(request: web.Request) -> web.Response:
    """Add a budget row to a tenant (or one of its keys): 201."""
    tenancy = tenancy_of(request)
    spec = await body_of(request, BudgetCreate)
    budget = await asyncio.shield(
        tenancy.store.create_budget(request.match_info["tenant_id"], spec)
    )
    return answer(budget, status=201)


async def list_budgets(request: web.Request) -> web.Response:
    """A tenant's budget rows."""
    budgets = await tenancy_of(request).store.budgets(request.match_info["tenant_id"])
    return answer(BudgetList(data=tuple(budgets)))


async def delete_budget(request: web.Request) -> web.Response:
    """Remove a budget row: 204."""
    tenancy = tenancy_of(request)
    raw = request.match_info["budget_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound(f"no budget {raw!r}")
    await asyncio.shield(tenancy.store.delete_budget(request.match_info["tenant_id"], int(raw)))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    """Serve the admin API on `app`."""
    tenant = "/v1/admin/tenants/{tenant_id}"
    router = app.router
    router.add_post("/v1/admin/tenants", post_tenant)
    router.add_get("/v1/admin/tenants", list_tenants)
    router.add_get(tenant, get_tenant)
    router.add_patch(tenant, patch_tenant)
    router.add_post(tenant + "/disable", disable_tenant)
    router.add_post(tenant + "/keys", post_key)
    router.add_get(tenant + "/keys", list_keys)
    router.add_post("/v1/admin/keys/{key_id}/revoke", revoke_key)
    router.add_post(tenant + "/budgets", post_budget)
    router.add_get(tenant + "/budgets", list_budgets)
    router.add_delete(tenant + "/budgets/{budget_id}", delete_budget)
