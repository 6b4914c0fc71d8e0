"""What webhook delivery needs: the registry, the sender, secrets and the retry policy."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from opentelemetry.trace import Tracer

from pipeline.metrics import Metrics
from pipeline.webhooks.registry import WebhookRegistry
from pipeline.webhooks.sender import WebhookSender


@dataclass(frozen=True)
class WebhookContext:
    """What delivery needs: the registry, the sender, secrets and the retry policy."""

    registry: WebhookRegistry
    sender: WebhookSender
    tenant_secrets: Callable[[str], Awaitable[list[str]]]
    claim: Callable[[str, str, float], Awaitable[bool]]
    retry_schedule_s: Sequence[float]
    disable_after_s: float
    # Where each attempt's outcome is counted (nowhere, when metrics are off).
    metrics: Metrics = field(default_factory=Metrics)
    # The process's tracer; None when tracing is off.
    tracer: Tracer | None = None
