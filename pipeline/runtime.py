"""Builds and tears down everything one promptbus process runs, from the settings."""

from dataclasses import dataclass

from pydantic import SecretStr

from handlers import StageContext
from pipeline.cache.lru import LRUMemoryCache
from pipeline.cache.responses import ResponseCache
from pipeline.catalog import ModelCatalog
from pipeline.emulator import EMULATOR_API_KEY, EmulatorConfig, RunningEmulator, start_emulator
from pipeline.providers.gemini import GEMINI_API_URL, GeminiProvider
from pipeline.settings import Settings
from pipeline.sync_path import SyncPath


@dataclass
class Runtime:
    """The running parts of one process."""

    settings: Settings
    catalog: ModelCatalog
    cache_backend: LRUMemoryCache
    ctx: StageContext
    sync_path: SyncPath
    gemini: GeminiProvider
    emulator: RunningEmulator | None

    @classmethod
    async def start(cls, settings: Settings) -> "Runtime":
        """Start the parts: the emulator if needed, the cache, the providers."""
        emulator = None
        if settings.uses_emulator:
            emulator = await start_emulator(
                EmulatorConfig(latency_ms=settings.emulator_latency_ms), host="127.0.0.1", port=0
            )
        gemini = GeminiProvider(
            api_key=_gemini_key(settings),
            base_url=emulator.base_url if emulator else settings.gemini_base_url or GEMINI_API_URL,
            timeout_s=settings.provider_timeout_s,
            max_attempts=settings.provider_max_attempts,
        )
        catalog = ModelCatalog.from_file(settings.models_file)
        backend = LRUMemoryCache(
            max_entries=settings.cache_max_entries,
            max_bytes=settings.cache_max_bytes,
            namespace="promptbus:",
        )
        cache = ResponseCache(backend, default_ttl_s=settings.cache_default_ttl_s)
        ctx = StageContext(catalog=catalog, cache=cache, providers={gemini.name: gemini})
        return cls(
            settings=settings,
            catalog=catalog,
            cache_backend=backend,
            ctx=ctx,
            sync_path=SyncPath(ctx, coalesce_wait_s=settings.coalesce_wait_s),
            gemini=gemini,
            emulator=emulator,
        )

    async def stop(self) -> None:
        """Stop everything started, in reverse order."""
        await self.gemini.aclose()
        await self.cache_backend.close()
        if self.emulator is not None:
            await self.emulator.stop()

    def provider_description(self) -> str:
        """Which provider answers, for the start-up log."""
        if self.emulator is not None:
            host = f"{self.emulator.host}:{self.emulator.port}"
            return f"gemini via the built-in emulator at {host} (GOOGLE_API_KEY is not set)"
        if self.settings.gemini_base_url:
            return f"gemini at {self.settings.gemini_base_url}"
        return "gemini (Google's API)"


def _gemini_key(settings: Settings) -> SecretStr:
    if settings.google_api_key is not None:
        return settings.google_api_key
    # A base URL without a key is an emulator or a proxy that holds the key itself.
    return SecretStr(EMULATOR_API_KEY)
