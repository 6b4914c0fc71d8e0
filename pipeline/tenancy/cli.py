"""`promptbus tenants …` and `promptbus keys …`: the admin API's work from a shell.

They act on the configured database directly (migrated first), so they work with no
gateway running. A new key is printed once, alone on stdout (for `KEY=$(…)`); what it is
goes to stderr. Running gateways see a change within the key cache's TTL.
"""

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from pydantic import ValidationError

from pipeline.db import create_engine, upgrade
from pipeline.errors import PromptbusError
from pipeline.settings import Settings
from pipeline.tenancy.store import TenantStore
from schemas.tenancy import KeyCreate, KeyView, TenantCreate


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `tenants` and `keys` to the CLI's commands."""
    tenants = commands.add_parser("tenants", help="tenants: create, list")
    tenant_actions = tenants.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = tenant_actions.add_parser("create", help="create a tenant")
    create.add_argument("id", help="the tenant's id (letters, digits, . _ -; up to 64)")
    create.add_argument("--name", default="", help="a name to show (default: the id)")
    tenant_actions.add_parser("list", help="list the tenants")

    keys = commands.add_parser("keys", help="API keys: create, list, revoke")
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    make = key_actions.add_parser("create", help="make a key for a tenant (printed once)")
    make.add_argument("--tenant", required=True, help="the tenant the key acts for")
    make.add_argument("--name", default="", help="what the key is for")
    make.add_argument("--models", help="the models it may use, comma-separated (default: all)")
    make.add_argument("--rpm", type=int, help="requests per minute (default: unlimited)")
    make.add_argument("--tpm", type=int, help="tokens per minute (default: unlimited)")
    listing = key_actions.add_parser("list", help="list a tenant's keys (never the keys)")
    listing.add_argument("--tenant", required=True)
    revoke = key_actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run a `tenants` or `keys` command; 0, 1 (refused) or 2 (bad input)."""
    try:
        action = _action(args)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "input"
            print(f"promptbus: invalid {field}: {error['msg']}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_on_database(settings, action))
    except PromptbusError as exc:
        print(f"promptbus: {exc.message}", file=sys.stderr)
        return 1
    return 0


Action = Callable[[TenantStore], Awaitable[None]]


def _action(args: argparse.Namespace) -> Action:
    """What the command does to the store (its input validated now)."""
    if args.command == "tenants" and args.action == "create":
        spec = TenantCreate(id=args.id, name=args.name)
        return lambda store: _create_tenant(store, spec)
    if args.command == "tenants":
        return _list_tenants
    if args.action == "create":
        models = None
        if args.models is not None:
            models = tuple(m.strip() for m in args.models.split(",") if m.strip())
        key = KeyCreate(name=args.name, allowed_models=models, rpm=args.rpm, tpm=args.tpm)
        tenant = args.tenant
        return lambda store: _create_key(store, tenant, key)
    if args.action == "list":
        tenant = args.tenant
        return lambda store: _list_keys(store, tenant)
    key_id = args.key_id
    return lambda store: _revoke(store, key_id)


async def _on_database(settings: Settings, action: Action) -> None:
    engine = create_engine(settings)
    try:
        await upgrade(engine)
        await action(TenantStore(engine))
    finally:
        await engine.dispose()


async def _create_tenant(store: TenantStore, spec: TenantCreate) -> None:
    tenant = await store.create_tenant(spec)
    print(f"tenant {tenant.id} created ({tenant.name})")


async def _list_tenants(store: TenantStore) -> None:
    for tenant in await store.tenants():
        state = "disabled" if tenant.disabled else "active"
        print(f"{tenant.id}\t{tenant.name}\t{state}\t{tenant.created_at:%Y-%m-%d %H:%M:%S}Z")


async def _create_key(store: TenantStore, tenant: str, spec: KeyCreate) -> None:
    created = await store.create_key(tenant, spec)
    print(
        f"key {created.id} ({created.prefix}…) for tenant {created.tenant}; "
        "shown this once, store it now:",
        file=sys.stderr,
    )
    print(created.key, flush=True)


async def _list_keys(store: TenantStore, tenant: str) -> None:
    for key in await store.keys(tenant):
        print(_key_line(key))


async def _revoke(store: TenantStore, key_id: str) -> None:
    key = await store.revoke_key(key_id)
    print(f"key {key.id} ({key.prefix}…) revoked at {key.revoked_at:%Y-%m-%d %H:%M:%S}Z")


def _key_line(key: KeyView) -> str:
    used = f"{key.last_used_at:%Y-%m-%d %H:%M:%S}Z" if key.last_used_at else "never used"
    state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M:%S}Z" if key.revoked_at else "active"
    models = ",".join(key.allowed_models) if key.allowed_models else "all models"
    limits = f"rpm={key.rpm or '-'} tpm={key.tpm or '-'}"
    return f"{key.id}\t{key.prefix}…\t{key.name or '-'}\t{state}\t{used}\t{models}\t{limits}"
