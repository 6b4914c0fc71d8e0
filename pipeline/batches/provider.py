"""Running a provider batch: one Gemini batch job, polled by a Celery task, mapped back.

The poll task (pipeline.worker.batch_tasks) runs one step and is queued again with a
countdown, so no worker sleeps through a wait: the first step submits the job, each next
one looks at it once, the delays growing by the poll policy (bounded by its max and by
the batch's window). Where the job is lives in the batch record (pipeline.batches.
provider_state), so a step that dies with its worker loses nothing: its message comes
back (late acks), or the sweeper, finding a poll overdue, queues it again (`rearm`). A
step carries its poll's number; the one that queues poll n+1 claims it in the job store,
so two runs of a step (a redelivery meeting a re-arm) go on as one. Once the job is done
its answers become the batch's items' lines in one transaction, one usage entry each,
and the batch ends as a gateway batch does (pipeline.batches.finalize).
"""

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Final

import structlog

from pipeline.batches.finalize import OnEnd, finalize
from pipeline.batches.provider_lines import rows_and_entries
from pipeline.batches.provider_state import ProviderState, provider_state, with_state
from pipeline.batches.store import CANCELLED, EXPIRED, BatchStore
from pipeline.db.batch_tables import BatchRecord
from pipeline.errors import PromptbusError
from pipeline.jobs.store import JobStore
from pipeline.ledger import UsageSink
from pipeline.providers.batch_outcomes import BatchItem, BridgeResult, BridgeState, ItemOutcome
from pipeline.providers.gemini_batch import GeminiBatchClient
from schemas import ErrorDetail, GenerateRequest
from schemas.batches import BatchStatus

log = structlog.get_logger("promptbus.batches")

POLL_CLAIM: Final = "batch-provider-poll"
SUBMIT_CLAIM: Final = "batch-provider-submit"
REARM_CLAIM: Final = "batch-provider-rearm"
_OPEN: Final = (BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING)

# Queues poll `poll` of a batch (on the broker, bounded).
EnqueuePoll = Callable[[str, int], Awaitable[None]]
OnProgress = Callable[[BatchRecord], Awaitable[None]]


class ProviderRunner:
    """Runs provider batches' steps against the Gemini Batch API."""

    def __init__(
        self,
        store: BatchStore,
        client: GeminiBatchClient,
        usage: UsageSink,
        jobs: JobStore,
        enqueue: EnqueuePoll,
        *,
        claim_s: float,
        submit_s: float,
        on_progress: OnProgress | None = None,
        on_end: OnEnd | None = None,
    ) -> None:
        self._store = store
        self._client = client
        self._usage = usage
        self._jobs = jobs
        self._enqueue = enqueue
        # A poll's claim outlasts the batch's window; a submit's, one bounded SDK call.
        self._claim_s = claim_s
        self._submit_s = submit_s
        self._on_progress = on_progress
        self._on_end = on_end

    async def aclose(self) -> None:
        """Close the provider client's connections."""
        await self._client.aclose()

    async def run(self, batch_id: str, poll: int) -> float | None:
        """Make poll `poll` of the batch; None when done, else seconds until the next."""
        batch = await self._store.batch(batch_id)
        if batch is None or batch.mode != "provider":
            return None
        state = provider_state(batch)
        status = BatchStatus(batch.status)
        if status not in (*_OPEN, BatchStatus.FINALIZING):
            return None  # it ended
        if poll < state.polls and status is BatchStatus.IN_PROGRESS:
            return None  # a later poll ran already (a cancel's step runs whenever it comes)
        if status is BatchStatus.FINALIZING or not await self._store.unfinished(batch.id):
            await self._finalize(batch, state)
            return None
        expired = status is BatchStatus.IN_PROGRESS and time.time() >= self._ends_at(batch)
        if status is BatchStatus.CANCELLING or expired:
            return await self._stop(batch, state, await self._items(batch), expired=expired)
        if state.job is None:
            return await self._submit(batch, state, await self._items(batch))
        try:
            # The items (all of a large batch's rows) are read once the job is done.
            if not (await self._client.state(state.job)).done:
                return await self._next(batch, state)
            items = await self._items(batch)
            result = await self._client.look(self._client.resume(state.job, items))
        except PromptbusError as exc:
            if exc.retryable:
                log.warning("provider batch poll failed", batch_id=batch.id, error=exc.message)
                return await self._next(batch, state)
            reason = f"the provider's batch job: {exc.message}"
            await self._fail(batch, state, await self._items(batch), reason)
            return None
        if result is None:
            return await self._next(batch, state)
        await self._settle(batch, state, result)
        return None

    async def rearm(self, batch: BatchRecord, stall_s: float) -> bool:
        """Queue a step again for a batch whose poll is `stall_s` overdue (its task lost)."""
        state = provider_state(batch)
        if batch.status == BatchStatus.CANCELLING and batch.cancelling_at is not None:
            due = batch.cancelling_at.timestamp()
        elif state.next_at is not None:
            due = state.next_at
        else:
            due = (batch.in_progress_at or batch.created_at).timestamp()
        if time.time() < due + stall_s:
            return False
        if not await self._jobs.claim(REARM_CLAIM, batch.id, stall_s):
            return False
        await self._enqueue(batch.id, state.polls)
        return True

    async def _items(self, batch: BatchRecord) -> list[BatchItem]:
        pending = await self._store.pending(batch.id, 0, batch.total)
        return [BatchItem(i.custom_id, GenerateRequest.model_validate(i.request)) for i in pending]

    async def _submit(
        self, batch: BatchRecord, state: ProviderState, items: Sequence[BatchItem]
    ) -> float | None:
        if not await self._jobs.claim(SUBMIT_CLAIM, batch.id, self._submit_s):
            return self._submit_s  # another run is submitting it: look again after
        try:
            if state.submitting_at is not None:
                # A run before died submitting: its job, if Gemini made one, is adopted.
                found = await self._client.find(batch.id)
                if found is not None:
                    return await self._submitted(batch, state, found)
            state = replace(state, submitting_at=time.time())
            if not await self._save(batch, state):
                return None
            submitted = await self._client.submit(items, display_name=batch.id)
        except PromptbusError as exc:
            await self._jobs.release(SUBMIT_CLAIM, batch.id)
            if exc.retryable:
                log.warning("provider batch submit failed", batch_id=batch.id, error=exc.message)
                return await self._next(batch, state)
            await self._fail(batch, state, items, f"the provider refused the batch: {exc.message}")
            return None
        return await self._submitted(batch, state, submitted.name)

    async def _submitted(self, batch: BatchRecord, state: ProviderState, job: str) -> float | None:
        state = replace(state, job=job)
        if not await self._save(batch, state):
            # Cancelled while it was being submitted, and ended already: stop the job too.
            await self._client.cancel(job)
            return None
        log.info("provider batch submitted", batch_id=batch.id, job=job)
        return await self._next(batch, state)

    async def _next(self, batch: BatchRecord, state: ProviderState) -> float | None:
        """Count the poll, note when the next is due; its delay (None: another run has it)."""
        policy = self._client.poll_policy
        delay = min(policy.max_s, policy.initial_s * policy.multiplier**state.polls)
        # The window's end is looked at on time (the job is cancelled then).
        delay = max(0.0, min(delay, self._ends_at(batch) - time.time()))
        following = ProviderState(job=state.job, polls=state.polls + 1, next_at=time.time() + delay)
        if not await self._save(batch, following):
            return None
        if not await self._jobs.claim(POLL_CLAIM, f"{batch.id}:{following.polls}", self._claim_s):
            return None
        return delay

    def _ends_at(self, batch: BatchRecord) -> float:
        """When the batch's job is given up: its window's end, or the poll deadline."""
        started = (batch.in_progress_at or batch.created_at).timestamp()
        return min(batch.expires_at.timestamp(), started + self._client.poll_policy.deadline_s)

    async def _save(self, batch: BatchRecord, state: ProviderState) -> bool:
        current = await self._store.batch(batch.id)
        if current is None:
            return False
        metadata = with_state(current.metadata_, state)
        return await self._store.update(batch.id, _OPEN, metadata_=metadata)

    async def _stop(
        self,
        batch: BatchRecord,
        state: ProviderState,
        items: Sequence[BatchItem],
        *,
        expired: bool,
    ) -> float | None:
        """Cancel the job (a cancel of ours, or the window's end): keep what it answered."""
        if state.job is not None:
            try:
                result = await self._client.stop(
                    self._client.resume(state.job, items), expired=expired
                )
            except PromptbusError as exc:
                if exc.retryable:
                    return await self._next(batch, state)
                log.warning("provider batch not cancelled", batch_id=batch.id, error=exc.message)
            else:
                await self._write(batch, [o for o in result.outcomes if _answered(o)])
        await self._store.close_pending(batch.id, EXPIRED if expired else CANCELLED)
        await self._finalize(batch, state)
        return None

    async def _settle(self, batch: BatchRecord, state: ProviderState, result: BridgeResult) -> None:
        """The job finished: its outcomes become lines, and the batch ends as the job did."""
        if result.state is BridgeState.FAILED:
            state = replace(state, failure=result.error or "the provider's batch job failed")
            await self._save(batch, state)
            await self._write(batch, result.outcomes)
        elif result.state is BridgeState.SUCCEEDED:
            await self._write(batch, result.outcomes)
        else:
            await self._write(batch, [o for o in result.outcomes if _answered(o)])
            if result.state is BridgeState.CANCELLED:
                # Cancelled at the provider's end: the batch is cancelled too.
                await self._store.move(batch.id, BatchStatus.CANCELLING, [BatchStatus.IN_PROGRESS])
            ended = CANCELLED if result.state is BridgeState.CANCELLED else EXPIRED
            await self._store.close_pending(batch.id, ended)
        await self._finalize(batch, state)

    async def _fail(
        self, batch: BatchRecord, state: ProviderState, items: Sequence[BatchItem], reason: str
    ) -> None:
        """The provider refused or lost the job: every item fails (`batch_failed`), the
        batch too."""
        state = replace(state, failure=reason)
        await self._save(batch, state)
        error = ErrorDetail(type="batch_failed", message=reason, retryable=False)
        await self._write(
            batch,
            [ItemOutcome(i.custom_id, i.request, i.request.model, error=error) for i in items],
        )
        await self._finalize(batch, state)

    async def _finalize(self, batch: BatchRecord, state: ProviderState) -> None:
        failure = None
        if state.failure is not None:
            failure = {"code": "provider_failed", "message": state.failure, "line": None}
            failure["param"] = None
        await finalize(self._store, batch.id, self._on_end, failure=failure)

    async def _write(self, batch: BatchRecord, outcomes: Sequence[ItemOutcome]) -> None:
        """Write each outcome's line once, and its usage entry under the batch's id."""
        if not outcomes:
            return
        rows, entries = rows_and_entries(batch, outcomes)
        if not await self._store.finish_items(batch.id, rows):
            return  # another run of this step wrote them (and their entries)
        for entry in entries:
            self._usage.record(entry)
        if self._on_progress is not None:
            await self._on_progress(batch)


def _answered(outcome: ItemOutcome) -> bool:
    """Whether the provider answered the item (with an answer or an error of its own)."""
    return outcome.answer is not None or outcome.status_code is not None
