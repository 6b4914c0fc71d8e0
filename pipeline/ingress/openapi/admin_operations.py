"""The admin API's routes, as the OpenAPI document shows them (all need the admin key)."""

from typing import Final

from pipeline.ingress.openapi.document import Operation, Reply
from schemas.tenancy import (
    BudgetCreate,
    BudgetList,
    BudgetView,
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyView,
    TenantCreate,
    TenantList,
    TenantUpdate,
    TenantView,
)

# Without the admin key: 401; with a tenant's key, or with the admin API off: 403.
ADMIN_ERRORS: Final = (401, 403)
BODY: Final = (400, 413, 415, 422)
TENANT: Final = "/v1/admin/tenants/{tenant_id}"

ADMIN_OPERATIONS: Final = (
    Operation(
        "POST",
        "/v1/admin/tenants",
        "Create a tenant",
        body=TenantCreate,
        replies=(Reply(201, "The tenant", TenantView),),
        errors=(*ADMIN_ERRORS, *BODY, 409),
    ),
    Operation(
        "GET",
        "/v1/admin/tenants",
        "Every tenant",
        replies=(Reply(200, "The tenants", TenantList),),
        errors=ADMIN_ERRORS,
    ),
    Operation(
        "GET",
        TENANT,
        "One tenant",
        replies=(Reply(200, "The tenant", TenantView),),
        errors=(*ADMIN_ERRORS, 404),
    ),
    Operation(
        "PATCH",
        TENANT,
        "Rename, disable or enable a tenant",
        body=TenantUpdate,
        replies=(Reply(200, "The tenant", TenantView),),
        errors=(*ADMIN_ERRORS, *BODY, 404),
    ),
    Operation(
        "POST",
        TENANT + "/disable",
        "Disable a tenant: its keys stop working within the key cache's TTL",
        replies=(Reply(200, "The tenant", TenantView),),
        errors=(*ADMIN_ERRORS, 404),
    ),
    Operation(
        "POST",
        TENANT + "/keys",
        "Make an API key for the tenant: the key is in this answer only",
        body=KeyCreate,
        replies=(Reply(201, "The key, shown this once", KeyCreated),),
        errors=(*ADMIN_ERRORS, *BODY, 404),
    ),
    Operation(
        "GET",
        TENANT + "/keys",
        "The tenant's keys: prefixes, times and limits, never the keys",
        replies=(Reply(200, "The keys", KeyList),),
        errors=(*ADMIN_ERRORS, 404),
    ),
    Operation(
        "POST",
        "/v1/admin/keys/{key_id}/revoke",
        "Revoke a key: it stops working within the key cache's TTL in every process",
        replies=(Reply(200, "The key, revoked", KeyView),),
        errors=(*ADMIN_ERRORS, 404),
    ),
    Operation(
        "POST",
        TENANT + "/budgets",
        "Add a budget row (USD per UTC day or month) to the tenant or one of its keys",
        body=BudgetCreate,
        replies=(Reply(201, "The budget row", BudgetView),),
        errors=(*ADMIN_ERRORS, *BODY, 404, 409),
    ),
    Operation(
        "GET",
        TENANT + "/budgets",
        "The tenant's budget rows",
        replies=(Reply(200, "The budget rows", BudgetList),),
        errors=(*ADMIN_ERRORS, 404),
    ),
    Operation(
        "DELETE",
        TENANT + "/budgets/{budget_id}",
        "Remove a budget row",
        replies=(Reply(204, "Removed"),),
        errors=(*ADMIN_ERRORS, 404),
    ),
)
