"""Builds and tears down everything one promptbus process runs, from the settings."""

import asyncio
from dataclasses import dataclass

import structlog

from handlers import StageContext
from pipeline.backends import Backends, build_backends
from pipeline.bus.admission import Admitter
from pipeline.bus.publisher import EventPublisher
from pipeline.bus.topology import Topology
from pipeline.cache.lru import LRUMemoryCache
from pipeline.catalog import ModelCatalog
from pipeline.emulator import EmulatorConfig, RunningEmulator, start_emulator
from pipeline.jobs.intake import JobIntake
from pipeline.jobs.store import JobStore
from pipeline.providers.base import ChatProvider
from pipeline.providers.setup import builtin_providers, custom_providers, describe
from pipeline.resilience import build_router
from pipeline.settings import Settings
from pipeline.sync_path import SyncPath
from pipeline.templates import TemplateCatalog
from pipeline.webhooks.registry import WebhookRegistry
from pipeline.webhooks.scheduler import WebhookScheduler
from pipeline.webhooks.sender import WebhookSender
from pipeline.webhooks.setup import build_webhooks
from pipeline.worker.embedded import Pool
from pipeline.worker.loop import LoopRunner
from pipeline.worker.prefork import child_settings
from pipeline.worker.service import JobWorker, TaskRunner
from schemas.webhooks import DeliveryTask

log = structlog.get_logger("promptbus")


@dataclass
class Runtime:
    """The running parts of one process."""

    settings: Settings
    catalog: ModelCatalog
    templates: TemplateCatalog
    backends: Backends
    ctx: StageContext
    sync_path: SyncPath
    providers: dict[str, ChatProvider]
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
    async def start(
        cls, settings: Settings, *, with_worker: bool | None = None, pool: Pool = "threads"
    ) -> "Runtime":
        """Start the parts: emulator if needed, cache, providers, bus, and the job worker."""
        # First, so a bad template file stops start-up before anything is running.
        templates = TemplateCatalog.from_directory(settings.templates_dir)
        catalog = ModelCatalog.from_file(settings.models_file)
        # Also before anything runs: a custom provider that cannot be built stops start-up.
        custom = custom_providers(settings, catalog)
        emulator = None
        if settings.uses_emulator:
            emulator = await start_emulator(
                EmulatorConfig(latency_ms=settings.emulator_latency_ms), host="127.0.0.1", port=0
            )
        providers: dict[str, ChatProvider] = {
            **builtin_providers(settings, emulator.base_url if emulator else None),
            **custom,
        }
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
            providers=providers,
            router=build_router(settings, providers, backends.limiter),
            jobs=jobs,
            events=publisher,
            webhooks=scheduler,
            claim_ttl_s=settings.job_retention_s,
            templates=templates,
        )
        runner = LoopRunner(asyncio.get_running_loop())
        tasks.append(TaskRunner(settings, topology, ctx, webhooks.context, runner))
        worker = None
        if settings.embedded_worker if with_worker is None else with_worker:
            admitter = Admitter(ctx, jobs, publisher)
            # A prefork child builds its own runtime (no worker), on this process's emulator.
            forked = child_settings(settings, emulator.base_url if emulator else None)
            worker = JobWorker(
                settings,
                topology,
                tasks[0],
                admitter,
                runner,
                pool=pool,
                child_runtime=lambda: cls.start(forked, with_worker=False),
            )
            # Starting Celery and the bridge blocks on broker connections: keep it off the loop.
            await asyncio.to_thread(worker.start)
        return cls(
            settings=settings,
            catalog=catalog,
            templates=templates,
            backends=backends,
            ctx=ctx,
            sync_path=SyncPath(
                ctx,
                coalesce_wait_s=settings.coalesce_wait_s,
                across_processes=backends.across_processes,
            ),
            providers=providers,
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
        for provider in self.providers.values():
            await provider.aclose()
        await self.backends.close()
        if self.emulator is not None:
            await self.emulator.stop()

    @property
    def cache_backend(self) -> LRUMemoryCache:
        """The in-process LRU (L1), for its stats."""
        return self.backends.l1

    def provider_description(self) -> str:
        """Which providers answer and where, for the start-up log."""
        emulator = self.emulator
        return describe(self.settings, f"{emulator.host}:{emulator.port}" if emulator else None)

    async def providers_ready(self) -> bool:
        """Whether every provider answers its readiness probe."""
        checks = await asyncio.gather(*(p.ready() for p in self.providers.values()))
        return all(checks)
