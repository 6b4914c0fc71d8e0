"""The tables: tenants, their API keys and budgets, and the usage ledger.

Migrations (pipeline/db/migrations) create and change them; these classes are how the
code reads and writes them. A change here needs a migration.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint names the same on every database, so that migrations can name them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite's INTEGER PRIMARY KEY is its row id; BigInteger elsewhere.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """The declarative base of every table."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy's own class attribute
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class Tenant(Base):
    """One tenant: everything it owns is keyed by its id."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiKey(Base):
    """An API key of a tenant: only its hash is kept, with a visible prefix and its limits."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # The first characters of the key, shown in listings (never enough to use it).
    prefix: Mapped[str] = mapped_column(String(32))
    # SHA-256 of the whole key, hex.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    # None: every model and route of the catalogue.
    allowed_models: Mapped[list[str] | None]
    rpm: Mapped[int | None]
    tpm: Mapped[int | None]

    __table_args__ = (Index("ix_api_keys_tenant", "tenant_id"),)


class Budget(Base):
    """A spending limit in USD per UTC day or month, of a tenant or of one of its keys."""

    __tablename__ = "budgets"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # None: the tenant's budget, over all its keys.
    key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(8))
    limit_usd: Mapped[float] = mapped_column(Float)
    # Past this share of the limit a `budget.threshold` event goes out, once per period.
    soft_ratio: Mapped[float] = mapped_column(Float, default=0.8)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("tenant_id", "key_id", "period", name="uq_budgets_scope"),)


class UsageRecord(Base):
    """One answered or failed request: who, what, how much, and how it went."""

    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    tenant: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[str] = mapped_column(String(128))
    job_id: Mapped[str | None] = mapped_column(String(64))
    # Which way it came: generate, chat, gemini, job, bus...
    surface: Mapped[str] = mapped_column(String(32))
    streamed: Mapped[bool] = mapped_column(Boolean, default=False)
    # The route or alias asked for, and what answered.
    model: Mapped[str] = mapped_column(String(200))
    deployment: Mapped[str | None] = mapped_column(String(200))
    provider: Mapped[str | None] = mapped_column(String(64))
    provider_model: Mapped[str | None] = mapped_column(String(200))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    # What the answer would have cost had the cache or coalescing not served it.
    saved_usd: Mapped[float] = mapped_column(Float, default=0.0)
    # None: a miss; else the tier that answered (l1, l2) or "coalesced".
    cache_tier: Mapped[str | None] = mapped_column(String(16))
    latency_ms: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    error_type: Mapped[str | None] = mapped_column(String(64))
    template_id: Mapped[str | None] = mapped_column(String(200))
    template_version: Mapped[str | None] = mapped_column(String(64))
    # A model call a chain made: the chain, its version and the step (None: a custom chain's).
    chain_id: Mapped[str | None] = mapped_column(String(64))
    chain_version: Mapped[int | None] = mapped_column(Integer)
    chain_step: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_usage_records_at", "at"),
        Index("ix_usage_records_tenant_at", "tenant", "at"),
    )
