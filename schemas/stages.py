"""The envelope the handler stages pass along: one request as it moves through them."""

from typing import Any

from pydantic import Field

from schemas._base import Envelope
from schemas.errors import ErrorDetail
from schemas.generate import GenerateRequest, GenerateResponse, ToolCall, Usage
from schemas.tracing import TraceContext


class Generation(Envelope):
    """What the provider answered, before pricing and caching."""

    provider: str
    provider_model: str
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str = Field(description="Lower-case provider finish reason, e.g. 'stop'")
    usage: Usage
    latency_ms: float = Field(ge=0)
    prompt_blocked: bool = Field(
        default=False, description="The provider refused the prompt itself: nothing was generated"
    )
    json_: Any = Field(default=None, alias="json", description="The parsed structured answer")


class RoutingState(Envelope):
    """How far routing got with one request: carried across retries and Celery hops."""

    attempts: int = Field(default=0, ge=0, description="Upstream calls made so far")
    tried: tuple[str, ...] = Field(default=(), description="Deployments that failed, in order")
    deadline: float | None = Field(default=None, description="Unix time after which to give up")
    deployment: str | None = Field(default=None, description="The deployment that answered")
    strategy: str | None = None


class StageEnvelope(Envelope):
    """A request on its way through identify, cache lookup, generate, post-process and emit."""

    request_id: str
    tenant: str
    key_id: str | None = Field(default=None, description="The API key the request came with")
    job_id: str | None = Field(default=None, description="Set when the request runs as a job")
    correlation_id: str | None = None
    request: GenerateRequest
    cache_key: str | None = None
    max_age_s: float | None = Field(default=None, description="Oldest cached answer accepted")
    deadline: float | None = Field(default=None, description="Unix time after which a job gives up")
    routing: RoutingState | None = None
    generation: Generation | None = None
    response: GenerateResponse | None = None
    error: ErrorDetail | None = Field(default=None, description="Set when a stage failed")
    # Left out of a dump when unset: a message sent with tracing off is as it was before,
    # so a worker of an earlier version (which forbids unknown fields) still takes it.
    trace: TraceContext | None = Field(
        default=None,
        description="The trace the job runs in",
        exclude_if=lambda value: value is None,
    )
