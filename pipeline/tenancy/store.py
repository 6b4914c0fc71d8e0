"""Tenants, API keys and budget rows in the database (pipeline/db/tables.py).

The admin API and the CLI write through this; the key lookup (`KeyDirectory`) reads
through it. Nothing here keeps a key in plaintext: a new key is returned once, and only
its digest and prefix are stored.
"""

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import delete, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from pipeline.db.tables import ApiKey, Budget, Tenant
from pipeline.errors import Conflict, NotFound, ValidationFailed
from pipeline.tenancy.apikeys import new_key, new_key_id, same_digest
from pipeline.tenancy.grant import Grant
from schemas.tenancy import (
    BudgetCreate,
    BudgetView,
    KeyCreate,
    KeyCreated,
    KeyView,
    TenantCreate,
    TenantUpdate,
    TenantView,
)


def _utc(when: datetime | None) -> datetime | None:
    """SQLite gives datetimes back without their zone: they were written in UTC."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)


def _tenant_view(row: Tenant) -> TenantView:
    return TenantView(
        id=row.id, name=row.name, created_at=_utc(row.created_at), disabled=row.disabled
    )


def _key_view(row: ApiKey) -> KeyView:
    return KeyView(
        id=row.id,
        tenant=row.tenant_id,
        name=row.name,
        prefix=row.prefix,
        created_at=_utc(row.created_at),
        last_used_at=_utc(row.last_used_at),
        revoked_at=_utc(row.revoked_at),
        allowed_models=None if row.allowed_models is None else tuple(row.allowed_models),
        rpm=row.rpm,
        tpm=row.tpm,
    )


def _budget_view(row: Budget) -> BudgetView:
    return BudgetView(
        id=row.id,
        tenant=row.tenant_id,
        key_id=row.key_id,
        period=row.period,
        limit_usd=row.limit_usd,
        soft_ratio=row.soft_ratio,
        created_at=_utc(row.created_at),
    )


class TenantStore:
    """Reads and writes tenants, keys and budget rows over one engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def create_tenant(self, spec: TenantCreate) -> TenantView:
        """A new tenant; Conflict if the id is taken."""
        row = Tenant(id=spec.id, name=spec.name or spec.id, created_at=datetime.now(UTC))
        try:
            async with self._sessions.begin() as session:
                if await session.get(Tenant, spec.id) is not None:
                    raise Conflict(f"tenant {spec.id!r} exists")
                session.add(row)
        except IntegrityError as exc:
            raise Conflict(f"tenant {spec.id!r} exists") from exc
        return _tenant_view(row)

    async def tenants(self) -> list[TenantView]:
        """Every tenant, by id."""
        async with self._sessions() as session:
            rows = await session.scalars(select(Tenant).order_by(Tenant.id))
            return [_tenant_view(row) for row in rows]

    async def tenant(self, tenant_id: str) -> TenantView | None:
        """One tenant, or None."""
        async with self._sessions() as session:
            row = await session.get(Tenant, tenant_id)
            return None if row is None else _tenant_view(row)

    async def update_tenant(self, tenant_id: str, change: TenantUpdate) -> TenantView:
        """The tenant with `change` made; NotFound if there is none."""
        async with self._sessions.begin() as session:
            row = await session.get(Tenant, tenant_id)
            if row is None:
                raise NotFound(f"no tenant {tenant_id!r}")
            if change.name is not None:
                row.name = change.name
            if change.disabled is not None:
                row.disabled = change.disabled
        return _tenant_view(row)

    async def create_key(self, tenant_id: str, spec: KeyCreate) -> KeyCreated:
        """A new key of the tenant: the plaintext is in the answer, and nowhere else."""
        made = new_key()
        row = ApiKey(
            id=new_key_id(),
            tenant_id=tenant_id,
            name=spec.name,
            prefix=made.prefix,
            key_hash=made.digest,
            created_at=datetime.now(UTC),
            allowed_models=None if spec.allowed_models is None else list(spec.allowed_models),
            rpm=spec.rpm,
            tpm=spec.tpm,
        )
        async with self._sessions.begin() as session:
            if await session.get(Tenant, tenant_id) is None:
                raise NotFound(f"no tenant {tenant_id!r}")
            session.add(row)
        return KeyCreated(**_key_view(row).model_dump(), key=made.plaintext)

    async def keys(self, tenant_id: str) -> list[KeyView]:
        """The tenant's keys, oldest first; NotFound if there is no such tenant."""
        async with self._sessions() as session:
            if await session.get(Tenant, tenant_id) is None:
                raise NotFound(f"no tenant {tenant_id!r}")
            rows = await session.scalars(
                select(ApiKey)
                .where(ApiKey.tenant_id == tenant_id)
                .order_by(ApiKey.created_at, ApiKey.id)
            )
            return [_key_view(row) for row in rows]

    async def revoke_key(self, key_id: str) -> KeyView:
        """The key, revoked (already revoked: as it was); NotFound if there is none."""
        async with self._sessions.begin() as session:
            row = await session.get(ApiKey, key_id)
            if row is None:
                raise NotFound(f"no key {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
        return _key_view(row)

    async def find(self, digest: str) -> Grant | None:
        """What the key with this digest grants (revoked keys included), or None."""
        async with self._sessions() as session:
            found = (
                await session.execute(
                    select(ApiKey, Tenant.disabled)
                    .join(Tenant, Tenant.id == ApiKey.tenant_id)
                    .where(ApiKey.key_hash == digest)
                )
            ).first()
        if found is None:
            return None
        row, disabled = found
        # The index found it; the digests are compared again in constant time all the same.
        if not same_digest(row.key_hash, digest):
            return None
        return Grant(
            key_id=row.id,
            tenant=row.tenant_id,
            digest=row.key_hash,
            models=None if row.allowed_models is None else frozenset(row.allowed_models),
            rpm=row.rpm,
            tpm=row.tpm,
            revoked=row.revoked_at is not None,
            tenant_disabled=bool(disabled),
        )

    async def any_keys(self) -> bool:
        """Whether any key was ever made (revoked ones count: revoking keeps keys required)."""
        async with self._sessions() as session:
            return bool(await session.scalar(select(exists().where(ApiKey.id.is_not(None)))))

    async def any_tenants(self) -> bool:
        """Whether any tenant exists."""
        async with self._sessions() as session:
            return bool(await session.scalar(select(exists().where(Tenant.id.is_not(None)))))

    async def usable_tenant(self, tenant_id: str) -> bool:
        """Whether the tenant exists and is not disabled."""
        async with self._sessions() as session:
            row = await session.get(Tenant, tenant_id)
            return row is not None and not row.disabled

    async def touch(self, used: Mapping[str, datetime]) -> None:
        """Record when each key was last used (a later time only)."""
        async with self._sessions.begin() as session:
            for key_id, when in used.items():
                await session.execute(
                    update(ApiKey)
                    .where(ApiKey.id == key_id)
                    .where((ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < when))
                    .values(last_used_at=when)
                )

    async def create_budget(self, tenant_id: str, spec: BudgetCreate) -> BudgetView:
        """A budget row of the tenant or one of its keys; Conflict if that scope has one."""
        row = Budget(
            tenant_id=tenant_id,
            key_id=spec.key_id,
            period=spec.period,
            limit_usd=spec.limit_usd,
            soft_ratio=spec.soft_ratio,
            created_at=datetime.now(UTC),
        )
        try:
            async with self._sessions.begin() as session:
                if await session.get(Tenant, tenant_id) is None:
                    raise NotFound(f"no tenant {tenant_id!r}")
                if spec.key_id is not None:
                    key = await session.get(ApiKey, spec.key_id)
                    if key is None or key.tenant_id != tenant_id:
                        raise ValidationFailed(
                            f"tenant {tenant_id!r} has no key {spec.key_id!r}", field="key_id"
                        )
                # NULL key ids are distinct to a unique index: the scope is checked here too.
                held = await session.scalar(
                    select(Budget.id).where(
                        Budget.tenant_id == tenant_id,
                        Budget.period == spec.period,
                        Budget.key_id.is_(None)
                        if spec.key_id is None
                        else Budget.key_id == spec.key_id,
                    )
                )
                if held is not None:
                    raise Conflict(f"budget {held} already limits this scope and period")
                session.add(row)
        except IntegrityError as exc:
            raise Conflict("a budget already limits this scope and period") from exc
        return _budget_view(row)

    async def budgets(self, tenant_id: str) -> list[BudgetView]:
        """The tenant's budget rows; NotFound if there is no such tenant."""
        async with self._sessions() as session:
            if await session.get(Tenant, tenant_id) is None:
                raise NotFound(f"no tenant {tenant_id!r}")
            rows = await session.scalars(
                select(Budget).where(Budget.tenant_id == tenant_id).order_by(Budget.id)
            )
            return [_budget_view(row) for row in rows]

    async def delete_budget(self, tenant_id: str, budget_id: int) -> None:
        """Remove a budget row of the tenant; NotFound if it has none by that id."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(Budget).where(Budget.id == budget_id, Budget.tenant_id == tenant_id)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise NotFound(f"tenant {tenant_id!r} has no budget {budget_id}")
