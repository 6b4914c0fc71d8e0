"""Jobs: what POST /v1/jobs accepts and the job record GET /v1/jobs/{id} returns."""

from typing import Any

from pydantic import Field, model_validator

from schemas._base import Envelope
from schemas.chains import ChainRef, ChainRun
from schemas.errors import ErrorDetail
from schemas.events import JobId, JobState, WebhookTarget
from schemas.generate import CacheControl, GenerateRequest, GenerateResponse, Message, SessionId
from schemas.webhooks import Attempt

TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class JobSubmission(GenerateRequest):
    """A generate request to run as a job, with where to report it."""

    webhook: WebhookTarget | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=64)
    correlation_id: str | None = Field(default=None, max_length=256)

    def generate_request(self) -> GenerateRequest:
        """The generate request alone, without the job's own fields."""
        return GenerateRequest.model_validate(
            self.model_dump(exclude={"webhook", "metadata", "correlation_id"}, exclude_unset=True)
        )


class ChainJobSubmission(Envelope):
    """A chain to run as a job (POST /v1/jobs with `chain`), with where to report it."""

    chain: ChainRef
    cache: CacheControl = Field(
        default=CacheControl(), description="Applied to every model call of the chain"
    )
    session_id: SessionId | None = Field(
        default=None, description="A kept conversation (see ChainInvocation.session_id)"
    )
    webhook: WebhookTarget | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=64)
    correlation_id: str | None = Field(default=None, max_length=256)


class SessionTurn(Envelope):
    """The session a job is a turn of, and what it keeps there once it succeeds (then the
    answer): the request's own turn, or a chain's input."""

    id: SessionId
    turn: tuple[Message, ...]


class Job(Envelope):
    """One job: its state, current stage, and its result or error once finished.

    A job runs a generate request (`request`) or a chain (`chain`, its steps' states).
    """

    id: JobId
    state: JobState
    stage: str | None = None
    tenant: str
    key_id: str | None = Field(default=None, description="The API key it was submitted with")
    correlation_id: str
    created_at: float
    updated_at: float
    finished_at: float | None = None
    request: GenerateRequest | None = None
    chain: ChainRun | None = None
    session: SessionTurn | None = None
    webhook: WebhookTarget | None = None
    metadata: dict[str, str] | None = None
    result: GenerateResponse | None = None
    error: ErrorDetail | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Job":
        if (self.request is None) is (self.chain is None):
            raise ValueError("a job runs either a 'request' or a 'chain'")
        return self

    @property
    def finished(self) -> bool:
        """Whether the job reached a final state."""
        return self.state in TERMINAL_STATES

    def public(self) -> dict[str, Any]:
        """The job as the HTTP API shows it."""
        return self.model_dump(mode="json", exclude_none=True)


class JobPage(Envelope):
    """A page of jobs, newest first, and the cursor for the next page."""

    data: tuple[Job, ...]
    next_cursor: str | None = None


class JobView(Job):
    """A job as GET /v1/jobs/{id} shows it: with its webhook's delivery attempts, if any."""

    webhook_attempts: tuple[Attempt, ...] | None = None
