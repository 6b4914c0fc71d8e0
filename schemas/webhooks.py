"""Webhook endpoints, delivery tasks and the record of each delivery attempt."""

from enum import StrEnum
from typing import Literal

from pydantic import Field, HttpUrl

from schemas._base import Envelope
from schemas.batches import BatchFinished
from schemas.budgets import BudgetThreshold
from schemas.events import CompletionEvent
from schemas.tracing import TraceContext

EventType = Literal[
    "completion.succeeded",
    "completion.failed",
    "batch.completed",
    "batch.failed",
    "batch.expired",
    "batch.cancelled",
    "budget.threshold",
]
ALL_EVENT_TYPES: tuple[EventType, ...] = (
    "completion.succeeded",
    "completion.failed",
    "batch.completed",
    "batch.failed",
    "batch.expired",
    "batch.cancelled",
    "budget.threshold",
)


class EndpointCreate(Envelope):
    """What POST /v1/webhooks accepts."""

    url: HttpUrl
    events: tuple[EventType, ...] = Field(default=ALL_EVENT_TYPES, min_length=1)
    description: str = Field(default="", max_length=500)


class Endpoint(Envelope):
    """A registered webhook endpoint."""

    id: str
    tenant: str
    url: str
    events: tuple[EventType, ...]
    description: str
    created_at: float
    disabled_at: float | None = None
    disabled_reason: str | None = None
    failing_since: float | None = Field(default=None, description="First failure of a streak")


class EndpointCreated(Endpoint):
    """What POST /v1/webhooks answers: the endpoint and its secret, shown this once."""

    secret: str


class EndpointList(Envelope):
    """What GET /v1/webhooks answers: the tenant's endpoints, without secrets."""

    data: tuple[Endpoint, ...]


class SecretRotated(Envelope):
    """What rotating an endpoint's secret answers: the new secret."""

    id: str
    secret: str


class JobWebhookSecret(Envelope):
    """What GET /v1/webhook-secret answers: the secret of the tenant's per-job webhooks."""

    tenant: str
    secret: str


class Outcome(StrEnum):
    """How one delivery attempt ended."""

    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"
    REFUSED = "refused"


class DeliveryTask(Envelope):
    """One message to deliver to one URL, and which attempt this is (0 = first)."""

    delivery_id: str = Field(description="Unique per scheduling; a replay gets a new one")
    message_id: str = Field(description="The webhook-id: the same on every retry and replay")
    tenant: str
    job_id: str = Field(description="The job, batch or budget whose event it delivers")
    endpoint_id: str | None = Field(default=None, description="None for a job's own URL")
    url: str
    event: CompletionEvent | BatchFinished | BudgetThreshold
    attempt: int = Field(default=0, ge=0)
    not_before: float | None = Field(default=None, description="Unix time this attempt is due")
    # Left out of a dump when unset: a message sent with tracing off is as it was before,
    # so a worker of an earlier version (which forbids unknown fields) still takes it.
    trace: TraceContext | None = Field(
        default=None, description="The trace it was sent in", exclude_if=lambda value: value is None
    )


class Attempt(Envelope):
    """What happened when one attempt was made."""

    message_id: str
    job_id: str
    endpoint_id: str | None = Field(default=None, description="None for a job's own URL")
    url: str
    attempt: int
    at: float
    duration_ms: float
    status: int | None = None
    outcome: Outcome
    error: str | None = None
    response_excerpt: str | None = None
    next_attempt_in_s: float | None = None


class AttemptList(Envelope):
    """An endpoint's recent delivery attempts, oldest first."""

    data: tuple[Attempt, ...]


class ReplayQueued(Envelope):
    """What a replay answers: the message queued for delivery again."""

    message_id: str
    job_id: str
    endpoint_id: str
