"""The tenant store on SQLite and PostgreSQL: keys kept as digests only, revocable."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.db import create_engine, upgrade
from pipeline.errors import Conflict, NotFound, ValidationFailed
from pipeline.tenancy import TenantStore, digest_of
from pipeline.tenancy.apikeys import KEY_MARK, PREFIX_CHARS, new_key
from schemas.tenancy import BudgetCreate, KeyCreate, TenantCreate, TenantUpdate
from tests.support.settings import settings_for_test


@pytest.fixture
async def engine(database_url: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    made = create_engine(settings_for_test(database_url=database_url, data_dir=tmp_path))
    await upgrade(made)
    yield made
    await made.dispose()


def test_a_new_key_has_its_mark_a_short_prefix_and_its_digest() -> None:
    made = new_key()

    assert made.plaintext.startswith(KEY_MARK)
    assert len(made.plaintext) == len(KEY_MARK) + 43  # 32 random bytes, URL-safe base64
    assert made.prefix == made.plaintext[:PREFIX_CHARS]
    assert made.digest == digest_of(made.plaintext)
    assert len(made.digest) == 64
    assert new_key().plaintext != made.plaintext


async def test_a_key_is_stored_as_its_digest_only(engine: AsyncEngine) -> None:
    # Given a tenant and a key of it
    store = TenantStore(engine)
    await store.create_tenant(TenantCreate(id="acme", name="Acme"))
    created = await store.create_key("acme", KeyCreate(name="ci", allowed_models=("flash",)))

    # Then no column of any row holds the key; its digest finds what it grants
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT * FROM api_keys"))).all()
    assert rows
    assert all(created.key not in str(value) for row in rows for value in row)
    grant = await store.find(digest_of(created.key))
    assert grant is not None
    assert grant.usable
    assert (grant.tenant, grant.key_id, grant.models) == ("acme", created.id, {"flash"})
    assert await store.find(digest_of(created.key + "x")) is None

    # And listings show the prefix, never the key
    (listed,) = await store.keys("acme")
    assert listed.prefix == created.key[:PREFIX_CHARS]
    assert created.key not in listed.model_dump_json()


async def test_revoking_and_disabling_make_a_key_unusable(engine: AsyncEngine) -> None:
    store = TenantStore(engine)
    await store.create_tenant(TenantCreate(id="acme"))
    created = await store.create_key("acme", KeyCreate())
    assert await store.any_keys()

    revoked = await store.revoke_key(created.id)
    again = await store.revoke_key(created.id)

    assert revoked.revoked_at is not None
    assert again.revoked_at == revoked.revoked_at
    grant = await store.find(digest_of(created.key))
    assert grant is not None
    assert grant.revoked
    assert not grant.usable
    # Revoked keys still count: revoking the last key does not reopen the gateway
    assert await store.any_keys()

    other = await store.create_key("acme", KeyCreate())
    await store.update_tenant("acme", TenantUpdate(disabled=True))
    disabled = await store.find(digest_of(other.key))
    assert disabled is not None
    assert disabled.tenant_disabled
    assert not disabled.usable
    assert not await store.usable_tenant("acme")


async def test_bad_references_change_nothing(engine: AsyncEngine) -> None:
    store = TenantStore(engine)
    await store.create_tenant(TenantCreate(id="acme"))

    with pytest.raises(Conflict):
        await store.create_tenant(TenantCreate(id="acme"))
    with pytest.raises(NotFound):
        await store.create_key("nobody", KeyCreate())
    with pytest.raises(NotFound):
        await store.revoke_key("key_nope")
    with pytest.raises(ValidationFailed):
        await store.create_budget(
            "acme", BudgetCreate(key_id="key_nope", period="day", limit_usd=1)
        )

    assert [t.id for t in await store.tenants()] == ["acme"]
    assert await store.keys("acme") == []
    assert await store.budgets("acme") == []
    assert not await store.any_keys()


async def test_budget_rows_one_per_scope_and_period(engine: AsyncEngine) -> None:
    store = TenantStore(engine)
    await store.create_tenant(TenantCreate(id="acme"))
    key = await store.create_key("acme", KeyCreate())

    daily = await store.create_budget("acme", BudgetCreate(period="day", limit_usd=5))
    keyed = await store.create_budget(
        "acme", BudgetCreate(key_id=key.id, period="day", limit_usd=1, soft_ratio=0.5)
    )
    with pytest.raises(Conflict):
        await store.create_budget("acme", BudgetCreate(period="day", limit_usd=7))

    assert [(b.key_id, b.limit_usd) for b in await store.budgets("acme")] == [
        (None, 5.0),
        (key.id, 1.0),
    ]
    await store.delete_budget("acme", daily.id)
    with pytest.raises(NotFound):
        await store.delete_budget("acme", daily.id)
    assert [b.id for b in await store.budgets("acme")] == [keyed.id]
