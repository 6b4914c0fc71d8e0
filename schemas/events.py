"""Bus envelopes: request events in, completion events and deltas out, and job states."""

from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import Field, HttpUrl

from schemas._base import Envelope
from schemas.errors import ErrorDetail
from schemas.generate import CacheInfo, Cost, GenerateRequest, GenerateResponse, Usage

REQUEST_SCHEMA: Final = "promptbus.request/v1"
COMPLETION_SCHEMA: Final = "promptbus.completion/v1"
DELTA_SCHEMA: Final = "promptbus.completion.delta/v1"
# The tenant of every request until API keys name one, and of bus events that name none.
DEFAULT_TENANT: Final = "default"

JobId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class JobState(StrEnum):
    """Where a job is: queued -> running -> succeeded | failed | cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class WebhookTarget(Envelope):
    """Where a job's completion is POSTed."""

    url: HttpUrl


class RequestEvent(Envelope):
    """A request to generate, as published on the `promptbus.requests` exchange."""

    schema_: Literal["promptbus.request/v1"] = Field(default=REQUEST_SCHEMA, alias="schema")
    job_id: JobId
    tenant: str | None = Field(default=None, max_length=128)
    correlation_id: str | None = Field(default=None, max_length=256)
    request: GenerateRequest
    webhook: WebhookTarget | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=64)


class CompletionEvent(Envelope):
    """A job's outcome, as published on the `promptbus.completions` exchange."""

    schema_: Literal["promptbus.completion/v1"] = Field(default=COMPLETION_SCHEMA, alias="schema")
    job_id: JobId
    correlation_id: str
    state: Literal[JobState.SUCCEEDED, JobState.FAILED]
    result: GenerateResponse | None = None
    error: ErrorDetail | None = None
    usage: Usage | None = None
    cost: Cost | None = None
    cache: CacheInfo | None = None
    finished_at: float


class CompletionDelta(Envelope):
    """One piece of a streaming job's answer, as published on `promptbus.completions`.

    A job's generate step may run more than once (a worker that died mid-answer, a task
    redelivered): each run has its own `run` number, higher than the last, and its deltas
    start again at index 0. The deltas of the highest run seen replace any earlier run's;
    the job's completion event holds the answer as it finally is.
    """

    schema_: Literal["promptbus.completion.delta/v1"] = Field(default=DELTA_SCHEMA, alias="schema")
    job_id: JobId
    correlation_id: str
    tenant: str | None = Field(default=None, max_length=128)
    run: int = Field(ge=1, description="Which run of the job's generate step, counting from 1")
    index: int = Field(ge=0, description="The delta's place within its run, from 0")
    text: str
    created: float = Field(description="Unix time the delta was produced")
