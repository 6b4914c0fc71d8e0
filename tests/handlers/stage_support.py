"""Shared by the stage tests: a real StageContext on in-memory backends, on the emulator.

Everything in it is the product's own, built as `pipeline.services` builds it: the memory
job store, the in-process LRU response cache, the memory webhook registry, the catalogues,
and the router with its LangChain providers talking HTTP to the test's emulator. Only the
ways out of the process are fakes, and they record what they are given: the bus that
completions and deltas go to (`RecordingSink`), the queue that webhook deliveries go to
(`RecordingQueue`) and the chain starter a Dispatcher hands a job's chain to
(`RecordingChains`).
"""

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from handlers import StageContext
from pipeline.bus.admission import envelope_for, new_job
from pipeline.bus.dispatch import Dispatcher
from pipeline.cache.lru import LRUMemoryCache
from pipeline.cache.responses import ResponseCache
from pipeline.cache.serializers import BytesSerializer
from pipeline.catalog import ModelCatalog
from pipeline.errors import BrokerUnavailable
from pipeline.jobs.memory import MemoryJobStore
from pipeline.jobs.memory_deltas import MemoryDeltaFeed
from pipeline.providers.base import ChatProvider
from pipeline.providers.setup import builtin_providers
from pipeline.resilience import build_router
from pipeline.resilience.ratelimit import MemoryRateLimiter
from pipeline.templates import TemplateCatalog
from pipeline.webhooks.registry import MemoryWebhookRegistry
from pipeline.webhooks.scheduler import WebhookScheduler
from schemas import (
    DEFAULT_TENANT,
    CompletionDelta,
    CompletionEvent,
    GenerateRequest,
    RequestEvent,
    StageEnvelope,
    WebhookTarget,
)
from schemas.jobs import Job
from schemas.webhooks import DeliveryTask
from tests.support.emulator import Emulator
from tests.support.settings import settings_for_test


class MovableClock:
    """Real time, plus however far the test has moved it on (the job store's clock)."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds


class RecordingSink:
    """The bus, as the stages see it: keeps each completion and delta; while `down`, refuses."""

    def __init__(self) -> None:
        self.events: list[CompletionEvent] = []
        self.deltas: list[CompletionDelta] = []
        self.down = False

    async def publish_completion(self, event: CompletionEvent) -> None:
        if self.down:
            raise BrokerUnavailable("the broker did not take the completion in time")
        self.events.append(event)

    async def publish_delta(self, delta: CompletionDelta) -> None:
        if self.down:
            raise BrokerUnavailable("the broker did not take the delta in time")
        self.deltas.append(delta)

    def of(self, job_id: str) -> list[CompletionEvent]:
        """The completions published for one job."""
        return [event for event in self.events if event.job_id == job_id]


class RecordingQueue:
    """The webhook scheduler's enqueue: keeps each delivery task it is given."""

    def __init__(self) -> None:
        self.tasks: list[DeliveryTask] = []

    def __call__(self, task: DeliveryTask) -> None:
        self.tasks.append(task)


class RecordingChains:
    """A Dispatcher's chain starter: keeps each envelope; `failure` makes the next start raise."""

    def __init__(self) -> None:
        self.envelopes: list[StageEnvelope] = []
        self.failure: BaseException | None = None

    async def __call__(self, envelope: StageEnvelope) -> None:
        # A real start publishes over the network: other events are dispatched meanwhile.
        await asyncio.sleep(0.01)
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        self.envelopes.append(envelope)

    def of(self, job_id: str) -> list[StageEnvelope]:
        """The chains started for one job."""
        return [envelope for envelope in self.envelopes if envelope.job_id == job_id]


@dataclass
class Stages:
    """A stage context and the parts of it a test looks at or moves."""

    ctx: StageContext
    jobs: MemoryJobStore
    cache: ResponseCache
    l1: LRUMemoryCache
    clock: MovableClock
    sink: RecordingSink
    deltas: MemoryDeltaFeed
    deliveries: RecordingQueue
    webhooks: MemoryWebhookRegistry
    emulator: Emulator

    def envelope(self, request: GenerateRequest, *, tenant: str = DEFAULT_TENANT) -> StageEnvelope:
        """A sync request's envelope, as the fast path starts it."""
        return StageEnvelope(
            request_id=f"req_{os.urandom(4).hex()}",
            tenant=tenant,
            request=request,
            max_age_s=request.cache.max_age,
        )

    async def submit(
        self, request: GenerateRequest, job_id: str, *, webhook: str | None = None
    ) -> StageEnvelope:
        """Record a queued job as an ingress does; the envelope its stages start from."""
        job = await self.record(request, job_id, webhook=webhook)
        return envelope_for(job, deadline=time.time() + self.ctx.job_deadline_s)

    async def record(
        self, request: GenerateRequest, job_id: str, *, webhook: str | None = None
    ) -> Job:
        """Record a queued job as an ingress does, before it publishes the job's event."""
        event = RequestEvent(
            job_id=job_id,
            request=request,
            webhook=None if webhook is None else WebhookTarget.model_validate({"url": webhook}),
        )
        job = new_job(event, now=self.clock())
        assert await self.jobs.create(job)
        return job

    async def job(self, job_id: str) -> Job:
        """The job's record (it must exist)."""
        job = await self.jobs.get(job_id)
        assert job is not None, f"no job {job_id!r}"
        return job


@asynccontextmanager
async def stage_context(
    emulator: Emulator,
    *,
    catalog: ModelCatalog | None = None,
    job_store: type[MemoryJobStore] = MemoryJobStore,
    **settings: Any,
) -> AsyncIterator[Stages]:
    """A real StageContext on memory backends, its providers on `emulator`.

    `catalog` replaces the configured model catalogue, `job_store` the memory store's class
    (a subclass that fails on cue), and `settings` override the test settings.
    """
    config = settings_for_test(gemini_base_url=emulator.base_url, **settings)
    clock = MovableClock()
    l1 = LRUMemoryCache(
        max_entries=config.cache_max_entries,
        max_bytes=config.cache_max_bytes,
        namespace="promptbus:",
        serializer=BytesSerializer(),
    )
    cache = ResponseCache(l1, default_ttl_s=config.cache_default_ttl_s)
    jobs = job_store(retention_s=config.job_retention_s, max_jobs=config.max_jobs, clock=clock)
    registry = MemoryWebhookRegistry(max_jobs_tracked=config.max_jobs)
    providers: dict[str, ChatProvider] = dict(builtin_providers(config, None))
    sink, deliveries = RecordingSink(), RecordingQueue()
    deltas = MemoryDeltaFeed(
        max_deltas=config.job_stream_max_deltas,
        max_jobs=config.job_stream_max_jobs,
        retention_s=config.job_retention_s,
        clock=clock,
    )
    ctx = StageContext(
        catalog=catalog or ModelCatalog.from_file(config.models_file),
        templates=TemplateCatalog.from_directory(config.templates_dir),
        cache=cache,
        router=build_router(config, providers, MemoryRateLimiter()),
        jobs=jobs,
        events=sink,
        webhooks=WebhookScheduler(registry, deliveries),
        deltas=deltas,
        job_deadline_s=config.job_deadline_s,
        claim_ttl_s=config.job_retention_s,
    )
    try:
        yield Stages(ctx, jobs, cache, l1, clock, sink, deltas, deliveries, registry, emulator)
    finally:
        for provider in providers.values():
            await provider.aclose()
        await l1.close()


@pytest.fixture
async def stages(emulator: Emulator) -> AsyncIterator[Stages]:
    """A stage context on memory backends and the test's emulator."""
    async with stage_context(emulator) as built:
        yield built


@pytest.fixture
def chains() -> RecordingChains:
    """The chains the test's dispatcher starts."""
    return RecordingChains()


@pytest.fixture
def dispatcher(stages: Stages, chains: RecordingChains) -> Dispatcher:
    """A real Dispatcher on the stage context, starting its chains into `chains`."""
    return Dispatcher(stages.ctx, chains)
