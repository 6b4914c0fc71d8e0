"""What a process keeps of tenancy: the store, the cached key lookup, last-used writes."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.settings import Settings
from pipeline.tenancy.directory import KeyDirectory
from pipeline.tenancy.last_used import LastUsed
from pipeline.tenancy.modes import Mode, mode_of
from pipeline.tenancy.store import TenantStore


@dataclass(frozen=True)
class Tenancy:
    """The tenancy parts of one process."""

    mode: Mode
    store: TenantStore
    directory: KeyDirectory
    last_used: LastUsed

    @classmethod
    def build(cls, settings: Settings, engine: AsyncEngine) -> "Tenancy":
        """The parts for `settings`, over `engine`'s database."""
        store = TenantStore(engine)
        return cls(
            mode=mode_of(settings),
            store=store,
            directory=KeyDirectory(
                store,
                ttl_s=settings.key_cache_ttl_s,
                max_entries=settings.key_cache_max_entries,
            ),
            last_used=LastUsed(
                store,
                interval_s=settings.key_touch_interval_s,
                max_keys=settings.key_cache_max_entries,
            ),
        )

    async def keys_required(self) -> bool:
        """Whether a request must come with a key now."""
        if self.mode is Mode.UNTIL_KEYS:
            return await self.directory.keys_exist()
        return self.mode is Mode.REQUIRED

    def keys_known_required(self) -> bool:
        """Whether keys are required, known without a database read (False: ask
        `keys_required`)."""
        return self.mode is Mode.REQUIRED or (
            self.mode is Mode.UNTIL_KEYS and self.directory.keys_known_to_exist
        )

    async def tenant_admitted(self, tenant: str) -> bool:
        """Whether a bus event may act for `tenant`: any, until tenants are configured."""
        if not await self.directory.tenants_exist():
            return True
        return await self.directory.tenant_usable(tenant)
