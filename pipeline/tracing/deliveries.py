"""The span of one webhook delivery attempt: an HTTP client span in the job's trace."""

from contextlib import AbstractContextManager
from urllib.parse import urlsplit

from opentelemetry.trace import Span, SpanKind, Tracer

from pipeline.tracing import names
from pipeline.tracing.propagation import from_trace
from pipeline.tracing.spans import failed, span
from schemas.webhooks import Attempt, DeliveryTask, Outcome


def delivery_span(tracer: Tracer | None, task: DeliveryTask) -> AbstractContextManager[Span]:
    """A client span around one attempt of `task`, under the span that queued it."""
    if tracer is None:
        return span(None, "")
    # Where it goes, but never the whole URL: a receiver's URL may hold a token.
    target = urlsplit(task.url)
    attributes: dict[str, str | int] = {
        names.HTTP_METHOD: "POST",
        names.SERVER_ADDRESS: target.hostname or "",
        names.URL_SCHEME: target.scheme,
        names.JOB_ID: task.job_id,
        names.TENANT: task.tenant,
        names.WEBHOOK_ATTEMPT: task.attempt,
    }
    if target.port is not None:
        attributes[names.SERVER_PORT] = target.port
    if task.endpoint_id is not None:
        attributes[names.WEBHOOK_ENDPOINT] = task.endpoint_id
    return span(
        tracer,
        names.WEBHOOK_SPAN,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        parent=from_trace(task.trace),
    )


def attempted(current: Span, attempt: Attempt | None) -> None:
    """Record how the attempt went (None: it had been made already, by another run)."""
    if not current.is_recording():
        return
    if attempt is None:
        current.set_attribute(names.WEBHOOK_OUTCOME, "duplicate")
        return
    current.set_attribute(names.WEBHOOK_OUTCOME, attempt.outcome.value)
    if attempt.status is not None:
        current.set_attribute(names.HTTP_STATUS, attempt.status)
    if attempt.outcome is not Outcome.DELIVERED:
        error_type = str(attempt.status) if attempt.status is not None else attempt.outcome.value
        failed(current, error_type, attempt.error)
