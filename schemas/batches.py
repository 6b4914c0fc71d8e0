"""Batches: their states, counts, and the events they send (bus, SSE and webhooks)."""

from enum import StrEnum
from typing import Final, Literal

from pydantic import Field

from schemas._base import Envelope

BATCH_PROGRESS_SCHEMA: Final = "promptbus.batch.progress/v1"
BATCH_FINISHED_SCHEMA: Final = "promptbus.batch.finished/v1"


class BatchStatus(StrEnum):
    """Where a batch is, in OpenAI's names."""

    VALIDATING = "validating"
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


# A batch in one of these changes no more.
FINAL_STATUSES: Final = frozenset(
    {BatchStatus.FAILED, BatchStatus.COMPLETED, BatchStatus.EXPIRED, BatchStatus.CANCELLED}
)


class RequestCounts(Envelope):
    """How many of a batch's requests there are, and how many ended each way."""

    total: int = Field(ge=0)
    completed: int = Field(ge=0)
    failed: int = Field(ge=0)


class BatchProgress(Envelope):
    """`batch.progress`: a batch's counts moved (sent at most once a second per batch)."""

    schema_: Literal["promptbus.batch.progress/v1"] = Field(
        default=BATCH_PROGRESS_SCHEMA, alias="schema"
    )
    type: Literal["batch.progress"] = "batch.progress"
    batch_id: str = Field(min_length=1, max_length=64)
    tenant: str = Field(max_length=128)
    status: BatchStatus
    request_counts: RequestCounts
    at: float = Field(description="Unix time of the counts")


class BatchFinished(Envelope):
    """`batch.completed|failed|expired|cancelled`: a batch ended, with its files."""

    schema_: Literal["promptbus.batch.finished/v1"] = Field(
        default=BATCH_FINISHED_SCHEMA, alias="schema"
    )
    type: Literal["batch.completed", "batch.failed", "batch.expired", "batch.cancelled"]
    batch_id: str = Field(min_length=1, max_length=64)
    tenant: str = Field(max_length=128)
    status: BatchStatus
    request_counts: RequestCounts
    output_file_id: str | None = None
    error_file_id: str | None = None
    at: float = Field(description="Unix time the batch ended")
