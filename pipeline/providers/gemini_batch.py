"""Gemini's own Batch API through google-genai: submit many requests, poll, map answers back.

One bridge batch is one Gemini batch job of inline requests for one Gemini model. Each
item's custom_id travels in its request's metadata and comes back with its answer (the
answers' order is the fallback). Answers are priced at the model's batch price.
"""

import asyncio
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from google import genai
from google.genai import types
from pydantic import SecretStr

from pipeline.catalog import ModelCatalog, ModelSpec
from pipeline.errors import PromptbusError, ValidationFailed
from pipeline.providers._errors import translate
from pipeline.providers._gemini_batch_wire import (
    CUSTOM_ID,
    answer_of,
    error_of,
    inlined_request,
    usage_of,
)
from pipeline.providers.gemini import API_VERSION, USER_AGENT
from schemas import Cost, ErrorDetail, GenerateRequest, Usage

# Inline requests in one Gemini batch (Gemini also caps the request at about 20 MB).
MAX_ITEMS: Final = 10_000


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


_STATES: Final = {
    types.JobState.JOB_STATE_PENDING: BridgeState.PENDING,
    types.JobState.JOB_STATE_QUEUED: BridgeState.PENDING,
    types.JobState.JOB_STATE_RUNNING: BridgeState.RUNNING,
    types.JobState.JOB_STATE_SUCCEEDED: BridgeState.SUCCEEDED,
    types.JobState.JOB_STATE_PARTIALLY_SUCCEEDED: BridgeState.SUCCEEDED,
    types.JobState.JOB_STATE_FAILED: BridgeState.FAILED,
    types.JobState.JOB_STATE_CANCELLED: BridgeState.CANCELLED,
    types.JobState.JOB_STATE_EXPIRED: BridgeState.EXPIRED,
}
# The error type of an item a job ended without answering, as OpenAI's batch lines name it.
_UNANSWERED: Final = {
    BridgeState.FAILED: "batch_failed",
    BridgeState.CANCELLED: "batch_cancelled",
    BridgeState.EXPIRED: "batch_expired",
}


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

    def delays(self) -> Iterator[float]:
        """The waits between polls, growing to `max_s`."""
        delay = self.initial_s
        while True:
            yield delay
            delay = min(self.max_s, delay * self.multiplier)


class GeminiBatchClient:
    """Submits, polls and cancels Gemini batch jobs through the google-genai SDK."""

    def __init__(
        self,
        *,
        api_key: SecretStr,
        base_url: str,
        catalog: ModelCatalog,
        poll: PollPolicy | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._catalog = catalog
        self._poll = poll or PollPolicy()
        self._client = genai.Client(
            api_key=api_key.get_secret_value(),
            http_options=types.HttpOptions(
                base_url=self.base_url,
                api_version=API_VERSION,
                headers={"user-agent": USER_AGENT},
                # The SDK's timeout is in milliseconds.
                timeout=int(timeout_s * 1000),
            ),
        )

    def _spec(self, items: Sequence[BatchItem]) -> ModelSpec:
        """The one Gemini model every item names; ValidationFailed otherwise."""
        if not items or len(items) > MAX_ITEMS:
            raise ValidationFailed(f"a provider batch holds 1 to {MAX_ITEMS} items")
        ids = [item.custom_id for item in items]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise ValidationFailed(f"custom_id must be unique; repeated: {', '.join(twice)}")
        specs = {item.custom_id: self._catalog.resolve(item.request.model) for item in items}
        first = specs[ids[0]]
        for custom_id, spec in specs.items():
            if spec.provider != "gemini":
                raise ValidationFailed(
                    f"{custom_id}: provider batches go to Gemini; "
                    f"{spec.provider_model} is a {spec.provider} model",
                    field="model",
                )
            if spec.provider_model != first.provider_model:
                raise ValidationFailed(
                    f"{custom_id}: one provider batch is one model; "
                    f"{spec.provider_model} is not {first.provider_model}",
                    field="model",
                )
        return first

    async def submit(
        self, items: Sequence[BatchItem], *, display_name: str = "promptbus"
    ) -> SubmittedBatch:
        """Start one Gemini batch job for `items` (all for one Gemini model)."""
        spec = self._spec(items)
        src = [inlined_request(item.custom_id, item.request) for item in items]
        try:
            job = await self._client.aio.batches.create(
                model=spec.provider_model, src=src, config={"display_name": display_name}
            )
        except Exception as exc:
            raise translate(exc) from exc
        if job.name is None:
            raise translate(ValueError("the batch job came back without a name"))
        return SubmittedBatch(job.name, spec, tuple(items))

    async def _job(self, name: str) -> types.BatchJob:
        try:
            return await self._client.aio.batches.get(name=name)
        except Exception as exc:
            raise translate(exc) from exc

    async def cancel(self, name: str) -> None:
        """Ask Gemini to stop the job; items it has not answered get none."""
        try:
            await self._client.aio.batches.cancel(name=name)
        except Exception as exc:
            raise translate(exc) from exc

    async def wait(self, batch: SubmittedBatch) -> BridgeResult:
        """Poll until the job finishes (retrying what may pass), then map its answers.

        At the policy's deadline the job is cancelled and its unanswered items expire.
        """
        deadline = time.monotonic() + self._poll.deadline_s
        job: types.BatchJob | None = None
        for delay in self._poll.delays():
            try:
                job = await self._job(batch.name)
            except PromptbusError as exc:
                if not exc.retryable:
                    raise
            if job is not None and _state(job).done:
                return self._result(batch, job, _state(job))
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(min(delay, left))
        job = await self._job(batch.name)
        if not _state(job).done:
            await self.cancel(batch.name)
            job = await self._job(batch.name)
        state = _state(job)
        return self._result(batch, job, state if state is BridgeState.SUCCEEDED else None)

    async def run(
        self, items: Sequence[BatchItem], *, display_name: str = "promptbus"
    ) -> BridgeResult:
        """Submit `items` and wait for their outcomes."""
        return await self.wait(await self.submit(items, display_name=display_name))

    def _result(
        self, batch: SubmittedBatch, job: types.BatchJob, state: BridgeState | None
    ) -> BridgeResult:
        """Every item's outcome; state None: the deadline passed, the items expired."""
        final = state or BridgeState.EXPIRED
        answered = job.dest.inlined_responses if job.dest and state else None
        by_id: dict[str, types.InlinedResponse] = {}
        for index, response in enumerate(answered or ()):
            custom_id = (response.metadata or {}).get(CUSTOM_ID)
            if custom_id is None and index < len(batch.items):
                custom_id = batch.items[index].custom_id
            if custom_id is not None:
                by_id[custom_id] = response
        outcomes = tuple(
            _outcome(batch.spec, item, by_id.get(item.custom_id), final) for item in batch.items
        )
        return BridgeResult(batch.name, final, outcomes)

    async def aclose(self) -> None:
        """Close the SDK's connections."""
        await self._client.aio.aclose()
        self._client.close()


def _state(job: types.BatchJob) -> BridgeState:
    return _STATES.get(job.state, BridgeState.PENDING) if job.state else BridgeState.PENDING


def _outcome(
    spec: ModelSpec, item: BatchItem, response: types.InlinedResponse | None, state: BridgeState
) -> ItemOutcome:
    """One item's outcome from its inline response (None: the job never answered it)."""
    outcome = ItemOutcome(item.custom_id, item.request, spec.provider_model)
    if response is None:
        kind = _UNANSWERED.get(state, "batch_failed")
        message = f"the Gemini batch ended {state} before answering this item"
        detail = ErrorDetail(type=kind, message=message, retryable=False)
        return replace(outcome, error=detail)
    try:
        if response.error is not None:
            raise error_of(response.error)
        if response.response is None:
            raise error_of(types.JobError(code=500, message="an answer with no response"))
        text, finish = answer_of(response.response)
    except PromptbusError as exc:
        return replace(outcome, error=exc.detail(), status_code=exc.status)
    usage = usage_of(response.response)
    return replace(outcome, answer=ItemAnswer(text, finish, usage, spec.batch_cost(usage)))
