"""The worker side of a process: the bridge, a Celery worker and the sweeper, on one context.

The bridge takes request events and dispatches their jobs (the first stage runs there, and
the chain of the rest goes on the bus); the Celery worker runs the chains' steps on a thread
pool, or in prefork children that build services of their own; the sweeper re-drives jobs
that stopped moving and redelivers completions that did not go out.
"""

import asyncio
from collections.abc import Sequence
from typing import Final

import structlog

from pipeline.batches import BatchRunner, lease_s
from pipeline.batches.provider import ProviderRunner
from pipeline.batches.setup import build_batches
from pipeline.batches.sweep import BatchSweeper
from pipeline.bus.bridge import Bridge
from pipeline.bus.celery_app import job_chain
from pipeline.bus.connection import broker_scheme
from pipeline.bus.dispatch import Dispatched, Dispatcher
from pipeline.bus.sources import Delivery
from pipeline.providers.setup import gemini_batch_client
from pipeline.services import Services
from pipeline.sessions import SessionWindow
from pipeline.settings import Settings
from pipeline.sync_path import SyncPath
from pipeline.worker.batch_tasks import (
    LaneBody,
    StepBody,
    enqueuer,
    poll_enqueuer,
    register_batch_task,
    register_provider_task,
)
from pipeline.worker.chain_driver import ChainDriver
from pipeline.worker.chain_tasks import ChainBody, register_chain_task
from pipeline.worker.embedded import EmbeddedWorker, Pool
from pipeline.worker.loop import LoopRunner
from pipeline.worker.prefork import ChildFactory, ChildServices, PreforkChildren, check_prefork
from pipeline.worker.sweeper import Sweeper
from pipeline.worker.tasks import TaskRunner, step_timeout_s
from schemas import StageEnvelope
from schemas.jobs import Job

log = structlog.get_logger("promptbus.worker")

# A batch's dispatch touches the job store, the cache and the bus: bounded, then requeued.
_DISPATCH_TIMEOUT_S: Final = 30.0


class WorkerSide:
    """The bridge and an in-process Celery worker (threads, or prefork children) and sweeper."""

    def __init__(
        self, services: Services, *, pool: Pool = "threads", children: ChildFactory | None = None
    ) -> None:
        settings = services.settings
        self._services = services
        self._runner = LoopRunner(asyncio.get_running_loop())
        self._tasks = TaskRunner(
            settings, services.celery, services.ctx, services.webhooks, self._runner
        )
        self._chain_jobs = ChainBody(chain_driver(services), self._runner)
        register_chain_task(services.celery, self._chain_jobs, step_timeout_s(settings))
        self._dispatcher = Dispatcher(
            services.ctx,
            self._start_chain,
            services.tenancy.tenant_admitted,
            redrive_chain_job=self._redrive_chain_job,
            max_event_bytes=settings.bus_max_event_bytes,
        )
        self._bridge = Bridge(settings, services.topology, dispatch=self._dispatch)
        self._sweeper = Sweeper(services.ctx, self._dispatcher, stall_s=settings.job_stall_s)
        self._batches = batch_runner(services)
        # A lane runs on this process's stage loop, or a prefork child's (see _child_lanes).
        self._lanes = LaneBody(
            self._batches,
            self._runner,
            slots=min(settings.batch_worker_slots, settings.worker_concurrency),
        )
        register_batch_task(services.celery, self._lanes, lease_s(settings) + 30)
        self._provider = provider_runner(services)
        self._steps = StepBody(self._provider, self._runner)
        register_provider_task(services.celery, self._steps, _step_timeout_s(settings))
        self._batch_sweeper = BatchSweeper(
            self._batches,
            interval_s=settings.batch_sweep_interval_s,
            stall_s=settings.job_stall_s,
            provider=self._provider,
        )
        self._children: PreforkChildren | None = None
        if pool == "prefork":
            check_prefork(settings)
            if children is None:
                raise ValueError("a prefork pool needs a way to build each child's services")
            self._children = PreforkChildren(
                self._tasks,
                children,
                gc_gen0_threshold=settings.gc_gen0_threshold,
                metrics_dir=settings.metrics_multiprocess_dir,
                on_child=self._child_lanes,
            )
        self._worker = EmbeddedWorker(
            services.celery, concurrency=settings.worker_concurrency, pool=pool
        )

    def _child_lanes(self, child: ChildServices, runner: LoopRunner) -> None:
        """A prefork child runs batch lanes on the services it built (promptbus's own)."""
        if isinstance(child, Services):
            self._lanes.adopt(batch_runner(child), runner)
            self._steps.adopt(provider_runner(child), runner)
            self._chain_jobs.adopt(chain_driver(child), runner)

    @property
    def dispatcher(self) -> Dispatcher:
        """What dispatches each job (the bridge's and the sweeper's)."""
        return self._dispatcher

    async def start(self) -> None:
        """Start the Celery worker, the bridge that feeds it, and the sweeper."""
        warning = visibility_warning(
            self._services.settings, step_timeout_s(self._services.settings)
        )
        if warning is not None:
            log.warning(warning)
        if self._children is not None:
            self._children.connect()
        # Starting Celery and the bridge blocks on broker connections: kept off the loop.
        await asyncio.to_thread(self._worker.start)
        await asyncio.to_thread(self._bridge.start)
        self._sweeper.start()
        self._batch_sweeper.start()

    async def stop(self) -> None:
        """Stop taking events, let in-flight tasks finish, then stop sweeping."""
        await asyncio.to_thread(self._bridge.stop)
        await asyncio.to_thread(self._worker.stop)
        await self._sweeper.stop()
        await self._batch_sweeper.stop()
        await self._provider.aclose()
        if self._children is not None:
            self._children.disconnect()

    def _dispatch(self, batch: Sequence[Delivery]) -> Sequence[Dispatched | BaseException]:
        """The bridge's hand-off: a batch dispatched on the stage loop, each event on its own."""
        try:
            return self._runner.run(self._dispatch_all(batch), _DISPATCH_TIMEOUT_S)
        except TimeoutError as exc:
            return [exc] * len(batch)

    async def _dispatch_all(self, batch: Sequence[Delivery]) -> list[Dispatched | BaseException]:
        return await asyncio.gather(
            *(self._dispatcher.event(d.body, d.headers) for d in batch), return_exceptions=True
        )

    async def _redrive_chain_job(self, job: Job) -> None:
        """Start a stalled chain job's next step again (the sweeper's re-drive)."""
        await self._chain_jobs.driver.advance(job.id, redrive=True)

    async def _start_chain(self, envelope: StageEnvelope) -> None:
        """Put a job's chain on the bus, bounded in time (BrokerUnavailable past the bound)."""
        await self._services.publisher.publish_chain(job_chain(self._services.celery, envelope))


def chain_driver(services: Services) -> ChainDriver:
    """What runs chain jobs' tasks against `services` (its own sync path)."""
    settings = services.settings
    sync_path = SyncPath(
        services.ctx,
        coalesce_wait_s=settings.coalesce_wait_s,
        across_processes=services.backends.across_processes,
    )
    return ChainDriver(
        services.ctx,
        services.chains,
        sync_path,
        services.publisher,
        services.celery,
        SessionWindow.of(settings),
    )


def batch_runner(services: Services) -> BatchRunner:
    """What runs batch lanes against `services` (its own sync path over the stage context)."""
    settings = services.settings
    parts = build_batches(services)
    sync_path = SyncPath(
        services.ctx,
        coalesce_wait_s=settings.coalesce_wait_s,
        across_processes=services.backends.across_processes,
    )
    return BatchRunner(
        settings,
        parts.store,
        sync_path,
        services.usage,
        services.ctx.jobs,
        enqueuer(services.celery, services.publisher),
        on_progress=parts.notices.progress,
        on_end=parts.notices.ended,
    )


def provider_runner(services: Services) -> ProviderRunner:
    """What runs provider batches' steps against `services` (Gemini where its provider is)."""
    settings = services.settings
    parts = build_batches(services)
    emulator_url = services.emulator.base_url if services.emulator is not None else None
    client = gemini_batch_client(settings, services.ctx.catalog, emulator_url)
    return ProviderRunner(
        parts.store,
        client,
        services.usage,
        services.ctx.jobs,
        poll_enqueuer(services.celery, services.publisher),
        claim_s=settings.batch_window_s + 3600,
        submit_s=_step_timeout_s(settings),
        on_progress=parts.notices.progress,
        on_end=parts.notices.ended,
    )


def _step_timeout_s(settings: Settings) -> float:
    """How long a provider batch step may run: an upload, a submit, a download and the
    writes, each one bounded SDK call."""
    return settings.provider_timeout_s * 4 + 30


def visibility_warning(settings: Settings, step_timeout_s: float) -> str | None:
    """A warning when a Redis broker would hand a task still running to a second worker."""
    visibility_s = settings.redis_visibility_timeout_s
    if broker_scheme(settings) != "redis" or visibility_s >= step_timeout_s:
        return None
    return (
        f"PROMPTBUS_REDIS_VISIBILITY_TIMEOUT_S={visibility_s} is below the {step_timeout_s:g} s "
        "a step may run: a slower step is handed to another worker while it still runs "
        "(its job still completes once, but the upstream call may be made twice)"
    )
