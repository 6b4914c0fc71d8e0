"""Tenants, their API keys and budget rows, as the admin API takes and shows them."""

from datetime import datetime
from typing import Literal

from pydantic import Field

from schemas._base import Envelope

# A tenant id: what every record of the tenant is keyed by (and the Redis key parts).
TENANT_ID = r"^[A-Za-z0-9._-]{1,64}$"
MAX_ALLOWED_MODELS = 100


class TenantCreate(Envelope):
    """What POST /v1/admin/tenants accepts."""

    id: str = Field(pattern=TENANT_ID)
    name: str = Field(default="", max_length=200)


class TenantUpdate(Envelope):
    """What PATCH /v1/admin/tenants/{id} accepts: the fields to change."""

    name: str | None = Field(default=None, max_length=200)
    disabled: bool | None = None


class TenantView(Envelope):
    """A tenant."""

    id: str
    name: str
    created_at: datetime
    disabled: bool


class TenantList(Envelope):
    """Every tenant, by id."""

    data: tuple[TenantView, ...]


class KeyCreate(Envelope):
    """What POST /v1/admin/tenants/{id}/keys accepts: the key's name and limits."""

    name: str = Field(default="", max_length=200)
    # None: every model and route of the catalogue.
    allowed_models: tuple[str, ...] | None = Field(
        default=None, min_length=1, max_length=MAX_ALLOWED_MODELS
    )
    rpm: int | None = Field(default=None, ge=1, le=10_000_000)
    tpm: int | None = Field(default=None, ge=1, le=10_000_000_000)


class KeyView(Envelope):
    """An API key as listings show it: never the key itself, only its prefix."""

    id: str
    tenant: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    allowed_models: tuple[str, ...] | None = None
    rpm: int | None = None
    tpm: int | None = None


class KeyCreated(KeyView):
    """A key just made: with the key itself, shown this once."""

    key: str


class KeyList(Envelope):
    """A tenant's keys, oldest first."""

    data: tuple[KeyView, ...]


class BudgetCreate(Envelope):
    """What POST /v1/admin/tenants/{id}/budgets accepts (the row only: enforcement is apart)."""

    key_id: str | None = Field(default=None, max_length=32)
    period: Literal["day", "month"]
    limit_usd: float = Field(gt=0, le=1e9)
    soft_ratio: float = Field(default=0.8, gt=0, le=1)


class BudgetView(Envelope):
    """A budget row of a tenant (or of one of its keys)."""

    id: int
    tenant: str
    key_id: str | None = None
    period: Literal["day", "month"]
    limit_usd: float
    soft_ratio: float
    created_at: datetime


class BudgetList(Envelope):
    """A tenant's budget rows."""

    data: tuple[BudgetView, ...]
