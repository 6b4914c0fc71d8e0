"""Builds and tears down everything one promptbus process runs, from the settings."""

import asyncio
from dataclasses import dataclass

import structlog
from pydantic import SecretStr

from handlers import StageContext
from pipeline.backends import Backends, build_backends
from pipeline.bus.admission import Admitter
from pipeline.bus.publisher import EventPublisher
from pipeline.bus.topology import Topology
from pipeline.cache.lru import LRUMemoryCache
from pipeline.catalog import ModelCatalog
from pipeline.emulator import EMULATOR_API_KEY, EmulatorConfig, RunningEmulator, start_emulator
from pipeline.jobs.intake import JobIntake
from pipeline.jobs.store import JobStore
from pipeline.providers.gemini import GEMINI_API_URL, GeminiProvider
from pipeline.settings import Settings
from pipeline.sync_path import SyncPath
from pipeline.webhooks.registry import WebhookRegistry
from pipeline.webhooks.scheduler import WebhookScheduler
from pipeline.webhooks.sender import WebhookSender
from pipeline.webhooks.setup import build_webhooks
from pipeline.worker.loop import LoopRunner
from pipeline.worker.service import JobWorker, TaskRunner
from schemas.webhooks import DeliveryTask

log = structlog.get_logger("promptbus")


@dataclass
class Runtime:
    """The running parts of one process."""

    settings: Settings
    catalog: ModelCatalog
    backends: Backends
    ctx: StageContext
    sync_path: SyncPath
    gemini: GeminiProvider
    emulator: RunningEmulator | None
    jobs: JobStore
    publisher: EventPublisher
    intake: JobIntake
    webhooks: WebhookRegistry
    scheduler: WebhookScheduler
    sender: WebhookSender
    tasks: TaskRunner
    worker: JobWorker | None
    notes: tuple[str, ...]

    @classmethod
    async def start(cls, settings: Settings, *, with_worker: bool | None = None) -> "Runtime":
        """Start the parts: emulator if needed, cache, providers, bus, and the job worker."""
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
        backends = build_backends(settings)
        jobs, registry = backends.jobs, backends.webhooks
        topology = Topology(settings.bus_suffix)
        publisher = EventPublisher(settings, topology)
        webhooks = build_webhooks(settings, registry, jobs)
        tasks: list[TaskRunner] = []  # bound below: the scheduler and the tasks need each other

        def enqueue(task: DeliveryTask) -> None:
            tasks[0].enqueue_delivery(task)

        scheduler = WebhookScheduler(registry, enqueue)
        ctx = StageContext(
            catalog=catalog,
            cache=backends.cache,
            providers={gemini.name: gemini},
            jobs=jobs,
            events=publisher,
            webhooks=scheduler,
            claim_ttl_s=settings.job_retention_s,
        )
        runner = LoopRunner(asyncio.get_running_loop())
        tasks.append(TaskRunner(settings, topology, ctx, webhooks.context, runner))
        worker = None
        if settings.embedded_worker if with_worker is None else with_worker:
            admitter = Admitter(ctx, jobs, publisher)
            worker = JobWorker(settings, topology, tasks[0], admitter, runner)
            # Starting Celery and the bridge blocks on broker connections: keep it off the loop.
            await asyncio.to_thread(worker.start)
        return cls(
            settings=settings,
            catalog=catalog,
            backends=backends,
            ctx=ctx,
            sync_path=SyncPath(
                ctx,
                coalesce_wait_s=settings.coalesce_wait_s,
                across_processes=backends.across_processes,
            ),
            gemini=gemini,
            emulator=emulator,
            jobs=jobs,
            publisher=publisher,
            intake=JobIntake(ctx, jobs, publisher, idempotency_ttl_s=settings.idempotency_ttl_s),
            webhooks=registry,
            scheduler=scheduler,
            sender=webhooks.sender,
            tasks=tasks[0],
            worker=worker,
            notes=webhooks.notes,
        )

    async def stop(self) -> None:
        """Stop everything started, in reverse order."""
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)
        await asyncio.to_thread(self.publisher.close)
        await self.sender.close()
        await self.gemini.aclose()
        await self.backends.close()
        if self.emulator is not None:
            await self.emulator.stop()

    @property
    def cache_backend(self) -> LRUMemoryCache:
        """The in-process LRU (L1), for its stats."""
        return self.backends.l1

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
