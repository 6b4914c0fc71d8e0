"""What every promptbus process builds from its settings: the stage context and its parts.

An ingress and a worker both need it: the catalogues, the providers (and the built-in
emulator when no real API is configured), the cache, the job store and webhook registry,
the router, the bus publisher and the Celery app that queues webhook deliveries and
chains. The send side (`pipeline.ingress.send`) and the worker side
(`pipeline.worker.side`) are built on top of it.
"""

import asyncio
from dataclasses import dataclass

from celery import Celery
from opentelemetry.sdk.trace.export import SpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine

from handlers import StageContext
from pipeline.backends import Backends, build_backends
from pipeline.budgets.setup import build_budgets
from pipeline.bus.celery_app import DeliveryQueue, create_celery
from pipeline.bus.publisher import EventPublisher
from pipeline.bus.topology import Topology
from pipeline.cache.lru import LRUMemoryCache
from pipeline.catalog import ModelCatalog
from pipeline.chains import ChainCatalog
from pipeline.db import create_engine, upgrade
from pipeline.emulator import EmulatorConfig, RunningEmulator, start_emulator
from pipeline.ledger import DISCARD, Ledger, LedgerLimits, UsageSink, row_writer
from pipeline.metrics import MeteredJobStore, Metrics, build_metrics
from pipeline.providers.base import ChatProvider
from pipeline.providers.setup import builtin_providers, custom_providers, describe
from pipeline.resilience import build_router
from pipeline.sessions import SessionStore, build_sessions
from pipeline.settings import Settings
from pipeline.templates import TemplateCatalog
from pipeline.tenancy import Tenancy
from pipeline.tracing import Tracing
from pipeline.webhooks.context import WebhookContext
from pipeline.webhooks.scheduler import WebhookScheduler
from pipeline.webhooks.sender import WebhookSender
from pipeline.webhooks.setup import build_webhooks


@dataclass(frozen=True)
class Services:
    """The running parts every process shares; `ctx` is what the stages run against."""

    settings: Settings
    topology: Topology
    ctx: StageContext
    backends: Backends
    providers: dict[str, ChatProvider]
    emulator: RunningEmulator | None
    publisher: EventPublisher
    celery: Celery
    webhooks: WebhookContext
    database: AsyncEngine
    # The usage ledger; None when `ledger_enabled` is off.
    ledger: Ledger | None
    tenancy: Tenancy
    notes: tuple[str, ...]
    metrics: Metrics
    tracing: Tracing
    chains: ChainCatalog
    sessions: SessionStore

    @classmethod
    async def start(
        cls,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        role: str | None = None,
        span_exporter: SpanExporter | None = None,
    ) -> "Services":
        """Build the parts; a bad configuration file stops this before anything runs.

        `metrics` is the recorder to use (the ingress's middleware records into it too);
        by default one is built from the settings. `role` names the process in its traces
        (default: an ingress, embedded with a worker or not); `span_exporter` (tests)
        replaces the OTLP exporter and turns tracing on.
        """
        templates = TemplateCatalog.from_directory(settings.templates_dir)
        catalog = ModelCatalog.from_file(settings.models_file)
        chains = ChainCatalog.from_directory(
            settings.chains_dir, catalog, templates, settings.custom_chains
        )
        database = create_engine(settings)
        try:
            await upgrade(database)
        except BaseException:
            await database.dispose()
            raise
        tenancy = Tenancy.build(settings, database)
        custom = custom_providers(settings, catalog)
        emulator = None
        if settings.uses_emulator:
            config = EmulatorConfig(
                latency_ms=settings.emulator_latency_ms,
                batch_step_ms=settings.emulator_batch_step_ms,
            )
            emulator = await start_emulator(config, host="127.0.0.1", port=0)
        providers: dict[str, ChatProvider] = {
            **builtin_providers(settings, emulator.base_url if emulator else None),
            **custom,
        }
        backends = build_backends(settings)
        topology = Topology(settings.bus_suffix)
        publisher = EventPublisher(settings, topology)
        celery = create_celery(settings, topology)
        metrics = metrics or build_metrics(settings)
        if role is None:
            role = "embedded" if settings.embedded_worker else "ingress"
        tracing = Tracing.start(settings, role, span_exporter)
        webhooks = build_webhooks(
            settings, backends.webhooks, backends.jobs, metrics, tracer=tracing.tracer
        )
        ledger = _ledger(settings, database, metrics)
        sink: UsageSink = DISCARD if ledger is None else ledger
        scheduler = WebhookScheduler(backends.webhooks, DeliveryQueue(celery))
        budgets = build_budgets(settings, database, backends.redis, publisher, scheduler)
        await budgets.reconcile(database)
        jobs = backends.jobs if not metrics.enabled else MeteredJobStore(backends.jobs, metrics)
        sessions = build_sessions(settings, backends.redis)
        ctx = StageContext(
            catalog=catalog,
            templates=templates,
            cache=backends.cache,
            router=build_router(
                settings, providers, backends.limiter, metrics, tracer=tracing.tracer
            ),
            jobs=jobs,
            events=publisher,
            webhooks=scheduler,
            deltas=backends.deltas,
            job_deadline_s=settings.job_deadline_s,
            claim_ttl_s=settings.job_retention_s,
            ledger=sink,
            budgets=budgets,
            metrics=metrics,
            tracer=tracing.tracer,
            sessions=sessions,
        )
        if ledger is not None:
            ledger.start()
        # Started last: nothing that can still fail leaves its task behind.
        tenancy.last_used.start()
        return cls(
            settings=settings,
            topology=topology,
            ctx=ctx,
            backends=backends,
            providers=providers,
            emulator=emulator,
            publisher=publisher,
            celery=celery,
            webhooks=webhooks.context,
            database=database,
            ledger=ledger,
            tenancy=tenancy,
            notes=webhooks.notes,
            metrics=metrics,
            tracing=tracing,
            chains=chains,
            sessions=sessions,
        )

    async def stop(self) -> None:
        """Close everything, in reverse order."""
        await asyncio.to_thread(self.publisher.close)
        await asyncio.to_thread(self.celery.close)
        await self.webhooks.sender.close()
        for provider in self.providers.values():
            await provider.aclose()
        await self.backends.close()
        if self.emulator is not None:
            await self.emulator.stop()
        if self.ledger is not None:
            await self.ledger.stop(self.settings.ledger_stop_timeout_s)
        await self.tenancy.last_used.stop()
        await self.database.dispose()
        # Last, so that the spans of everything above go out too.
        await asyncio.to_thread(self.tracing.shutdown)

    @property
    def sender(self) -> WebhookSender:
        """The guarded webhook sender (its address policy checks registered URLs)."""
        return self.webhooks.sender

    @property
    def l1(self) -> LRUMemoryCache:
        """The in-process LRU (L1), for its stats."""
        return self.backends.l1

    def provider_description(self) -> str:
        """Which providers answer and where, for the start-up log."""
        emulator = self.emulator
        return describe(self.settings, f"{emulator.host}:{emulator.port}" if emulator else None)

    @property
    def usage(self) -> UsageSink:
        """Where the request paths record usage (nowhere when the ledger is off)."""
        return self.ctx.ledger

    async def providers_ready(self) -> bool:
        """Whether every provider answers its readiness probe."""
        checks = await asyncio.gather(*(p.ready() for p in self.providers.values()))
        return all(checks)


def _ledger(settings: Settings, database: AsyncEngine, metrics: Metrics) -> Ledger | None:
    if not settings.ledger_enabled:
        return None
    limits = LedgerLimits(
        batch_size=settings.ledger_batch_size,
        flush_interval_s=settings.ledger_flush_interval_s,
        spool_max=settings.ledger_spool_max,
        retry_max_s=settings.ledger_retry_max_s,
        write_timeout_s=settings.ledger_write_timeout_s,
    )
    return Ledger(row_writer(database), limits, metrics)
