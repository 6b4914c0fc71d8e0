"""The key lookup's cache: trusted for its TTL, then read again; the auth modes."""

from pathlib import Path

import pytest

from pipeline.db import create_engine, upgrade
from pipeline.tenancy import KeyDirectory, Mode, TenantStore, digest_of, is_loopback, mode_of
from pipeline.tenancy.modes import refusal
from schemas.tenancy import KeyCreate, TenantCreate
from tests.support.settings import settings_for_test

TTL_S = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_revoked_key_is_trusted_until_its_ttl_then_refused(tmp_path: Path) -> None:
    engine = create_engine(settings_for_test(data_dir=tmp_path))
    await upgrade(engine)
    try:
        store = TenantStore(engine)
        await store.create_tenant(TenantCreate(id="acme"))
        key = await store.create_key("acme", KeyCreate())
        clock = Clock()
        # Given a directory that looked the key up
        directory = KeyDirectory(store, ttl_s=TTL_S, max_entries=16, clock=clock)
        found = await directory.grant(digest_of(key.key))
        assert found is not None
        assert found.usable

        # When another process revokes it (straight in the database)
        await store.revoke_key(key.id)

        # Then this directory trusts its copy until the TTL has passed, and not after
        clock.now += TTL_S - 0.01
        cached = await directory.grant(digest_of(key.key))
        assert cached is found
        clock.now += 0.02
        fresh = await directory.grant(digest_of(key.key))
        assert fresh is not None
        assert fresh.revoked
        # And an unknown key is None (and remembered as such for the TTL too)
        assert await directory.grant(digest_of("pb_nobody")) is None
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("gateway.internal", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_modes_and_when_serve_refuses() -> None:
    local = settings_for_test(host="127.0.0.1")
    public = settings_for_test(host="0.0.0.0")

    assert mode_of(local) is Mode.UNTIL_KEYS
    assert mode_of(public) is Mode.REQUIRED
    assert mode_of(settings_for_test(host="0.0.0.0", auth="off")) is Mode.OPEN
    assert mode_of(settings_for_test(auth="on")) is Mode.REQUIRED
    # serve refuses only beyond loopback, with neither keys nor an admin key, auth not off
    assert refusal(local, keys_exist=False) is None
    assert refusal(public, keys_exist=True) is None
    assert refusal(settings_for_test(host="0.0.0.0", admin_key="k" * 20), keys_exist=False) is None
    assert refusal(settings_for_test(host="0.0.0.0", auth="off"), keys_exist=False) is None
    refused = refusal(public, keys_exist=False)
    assert refused is not None
    assert "PROMPTBUS_AUTH=off" in refused
