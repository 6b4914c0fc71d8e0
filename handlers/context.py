"""What the stages share: the catalogues, the cache, the router, the job store, the bus and
the usage ledger."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry.trace import Tracer

from pipeline.cache.responses import ResponseCache
from pipeline.catalog import ModelCatalog
from pipeline.jobs.deltas import DeltaFeed
from pipeline.jobs.store import JobStore
from pipeline.ledger import DISCARD, UsageSink
from pipeline.metrics import Metrics
from pipeline.templates import TemplateCatalog

if TYPE_CHECKING:
    from handlers.emit import CompletionSink
    from pipeline.budgets import BudgetGuard
    from pipeline.resilience.router import Router
    from pipeline.sessions import SessionStore
    from pipeline.webhooks.scheduler import WebhookScheduler


@dataclass(frozen=True, slots=True)
class StageContext:
    """Infrastructure the stages run against; built once at start-up."""

    catalog: ModelCatalog
    templates: TemplateCatalog
    cache: ResponseCache
    router: "Router"
    jobs: JobStore
    events: "CompletionSink"
    webhooks: "WebhookScheduler"
    # Where a streaming job's deltas are kept for its readers.
    deltas: DeltaFeed
    # How long a job's deadline runs from its dispatch, and how long its claims last.
    job_deadline_s: float = 600.0
    claim_ttl_s: float = 24 * 3600
    # Where each finished job's usage record goes (the process's ledger).
    ledger: UsageSink = DISCARD
    # Budgets checked before a model call and charged after it; None: no budgets.
    budgets: "BudgetGuard | None" = None
    # What the stages report (nothing, when metrics are off).
    metrics: Metrics = field(default_factory=Metrics)
    # The process's tracer; None when tracing is off.
    tracer: Tracer | None = None
    # Where conversations are kept (a job that is a session's turn keeps it there).
    sessions: "SessionStore | None" = None
