"""What a provider batch is made of and comes back as: items, outcomes, the job's state."""

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from pipeline.catalog import ModelSpec
from schemas import Cost, ErrorDetail, GenerateRequest, Usage


class BridgeState(StrEnum):
    """Where the Gemini batch job is."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def done(self) -> bool:
        """Whether the job has finished, one way or another."""
        return self not in (BridgeState.PENDING, BridgeState.RUNNING)


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One request of a batch and the caller's id for it."""

    custom_id: str
    request: GenerateRequest


@dataclass(frozen=True, slots=True)
class ItemAnswer:
    """What the model answered one item, priced at the batch price."""

    text: str
    finish_reason: str
    usage: Usage
    cost: Cost


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """One item's result: an answer, or an error (with the HTTP status it stands for, or
    None for an item the job never answered)."""

    custom_id: str
    request: GenerateRequest
    provider_model: str
    answer: ItemAnswer | None = None
    error: ErrorDetail | None = None
    status_code: int | None = None


@dataclass(frozen=True, slots=True)
class SubmittedBatch:
    """A Gemini batch job the bridge started, and what it holds."""

    name: str
    spec: ModelSpec
    items: tuple[BatchItem, ...]


@dataclass(frozen=True, slots=True)
class BridgeResult:
    """A finished job: its state and every item's outcome, in the items' order."""

    name: str
    state: BridgeState
    outcomes: tuple[ItemOutcome, ...]
    # What the provider said of a job that failed, when it said anything.
    error: str | None = None

    @property
    def completed(self) -> int:
        """Items answered."""
        return sum(1 for outcome in self.outcomes if outcome.answer is not None)

    @property
    def failed(self) -> int:
        """Items that got an error."""
        return len(self.outcomes) - self.completed


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How often to look at a job: exponential backoff between bounds, and when to stop."""

    initial_s: float = 2.0
    max_s: float = 60.0
    multiplier: float = 1.5
    # Gemini's own window is 48 hours; a job still unfinished at the deadline is cancelled.
    deadline_s: float = 24 * 3600.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError("poll delays need 0 < initial_s <= max_s")
        if self.multiplier < 1:
            raise ValueError("the poll delay multiplier is at least 1")
        if not 0 < self.deadline_s <= 7 * 24 * 3600:
            raise ValueError("the poll deadline is more than 0 and at most a week")

    def delays(self) -> Iterator[float]:
        """The waits between polls, growing to `max_s`."""
        delay = self.initial_s
        while True:
            yield delay
            delay = min(self.max_s, delay * self.multiplier)
