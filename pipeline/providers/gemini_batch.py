"""Gemini's own Batch API through google-genai: submit many requests, poll, map answers back.

One bridge batch is one Gemini batch job for one Gemini model, of inline requests or (for
a large batch) an uploaded JSON Lines file. Each item's custom_id travels with its request
(inline metadata, a file line's key) and comes back with its answer; the answers' order is
the fallback. Answers are priced at the model's batch price.
"""

import asyncio
import io
import time
from collections.abc import Sequence
from typing import Final, Literal

from google import genai
from google.genai import types
from pydantic import SecretStr

from pipeline.catalog import ModelCatalog, ModelSpec
from pipeline.errors import PromptbusError, UpstreamError, ValidationFailed
from pipeline.providers._errors import translate
from pipeline.providers._gemini_batch_wire import (
    CUSTOM_ID,
    file_line,
    file_responses,
    inlined_request,
    outcome,
)
from pipeline.providers.batch_outcomes import (
    BatchItem,
    BridgeResult,
    BridgeState,
    PollPolicy,
    SubmittedBatch,
)
from pipeline.providers.gemini import API_VERSION, USER_AGENT

# Items in one Gemini batch.
MAX_ITEMS: Final = 10_000
# Gemini takes inline requests up to about 20 MB in all; past this, the items go in a file.
INLINE_MAX_BYTES: Final = 16 * 1024 * 1024
Source = Literal["inline", "file"]
# Jobs looked through for one submitted before (whose submitter died before noting it).
FIND_MAX: Final = 1_000

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
        inline_max_bytes: int = INLINE_MAX_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._catalog = catalog
        self._poll = poll or PollPolicy()
        self._inline_max_bytes = inline_max_bytes
        self._client = genai.Client(
            api_key=api_key.get_secret_value(),
            http_options=types.HttpOptions(
                base_url=self.base_url,
                api_version=API_VERSION,
                headers={"user-agent": USER_AGENT},
                # The SDK's timeout is in milliseconds.
                timeout=int(timeout_s * 1000),
                # One attempt: polling retries. Without retry options the SDK would retry a
                # refused connection by itself, after sleeping 1 to 10 seconds.
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    @property
    def poll_policy(self) -> PollPolicy:
        """How often jobs are looked at."""
        return self._poll

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
        self,
        items: Sequence[BatchItem],
        *,
        display_name: str = "promptbus",
        source: Source | None = None,
    ) -> SubmittedBatch:
        """Start one Gemini batch job for `items` (all for one Gemini model), inline or in
        an uploaded file (None: a file only when inline would be too large)."""
        spec = self._spec(items)
        lines = [file_line(item) for item in items]
        if source is None:
            source = "file" if sum(map(len, lines)) > self._inline_max_bytes else "inline"
        try:
            src: list[types.InlinedRequest] | str
            if source == "file":
                src = await self._upload(b"".join(lines), display_name)
            else:
                src = [inlined_request(item) for item in items]
            job = await self._client.aio.batches.create(
                model=spec.provider_model, src=src, config={"display_name": display_name}
            )
        except Exception as exc:
            raise translate(exc) from exc
        if job.name is None:
            raise UpstreamError("the batch job came back without a name")
        return SubmittedBatch(job.name, spec, tuple(items))

    def resume(self, name: str, items: Sequence[BatchItem]) -> SubmittedBatch:
        """A job submitted before (by this or another process), to look at again."""
        return SubmittedBatch(name, self._spec(items), tuple(items))

    async def state(self, name: str) -> BridgeState:
        """Where the named job is, looked at once."""
        return _state(await self._job(name))

    async def find(self, display_name: str, *, at_most: int = FIND_MAX) -> str | None:
        """The name of a job of that display name among the newest `at_most` listed."""
        try:
            pager = await self._client.aio.batches.list(config={"page_size": 100})
            seen = 0
            async for job in pager:
                if job.display_name == display_name:
                    return job.name
                seen += 1
                if seen >= at_most:
                    break
        except Exception as exc:
            raise translate(exc) from exc
        return None

    async def look(self, batch: SubmittedBatch) -> BridgeResult | None:
        """Look at the job once: None while it runs, else every item's outcome."""
        job = await self._job(batch.name)
        state = _state(job)
        return await self._result(batch, job, state) if state.done else None

    async def stop(self, batch: SubmittedBatch, *, expired: bool = False) -> BridgeResult:
        """Cancel the job unless it has finished; its outcomes (the unanswered items
        cancelled, or expired when `expired`)."""
        job = await self._job(batch.name)
        if not _state(job).done:
            await self.cancel(batch.name)
            job = await self._job(batch.name)
        state = _state(job)
        if state is BridgeState.SUCCEEDED:
            return await self._result(batch, job, state)
        return await self._result(batch, job, None if expired else BridgeState.CANCELLED)

    async def _upload(self, data: bytes, display_name: str) -> str:
        """Upload a batch's input file; its name."""
        config = types.UploadFileConfig(mime_type="application/jsonl", display_name=display_name)
        uploaded = await self._client.aio.files.upload(file=io.BytesIO(data), config=config)
        if uploaded.name is None:
            raise UpstreamError("the uploaded batch file came back without a name")
        return uploaded.name

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
                return await self._result(batch, job, _state(job))
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await asyncio.sleep(min(delay, left))
        job = await self._job(batch.name)
        if not _state(job).done:
            await self.cancel(batch.name)
            job = await self._job(batch.name)
        state = _state(job)
        return await self._result(batch, job, state if state is BridgeState.SUCCEEDED else None)

    async def run(
        self,
        items: Sequence[BatchItem],
        *,
        display_name: str = "promptbus",
        source: Source | None = None,
    ) -> BridgeResult:
        """Submit `items` and wait for their outcomes."""
        submitted = await self.submit(items, display_name=display_name, source=source)
        return await self.wait(submitted)

    async def _responses(self, job: types.BatchJob) -> list[types.InlinedResponse]:
        """The job's answers: inline, or read from its responses file."""
        if job.dest is None:
            return []
        if job.dest.file_name is None:
            return list(job.dest.inlined_responses or ())
        try:
            data = await self._client.aio.files.download(file=job.dest.file_name)
        except Exception as exc:
            raise translate(exc) from exc
        return file_responses(data)

    async def _result(
        self, batch: SubmittedBatch, job: types.BatchJob, state: BridgeState | None
    ) -> BridgeResult:
        """Every item's outcome; state None: the deadline passed, the items expired."""
        final = state or BridgeState.EXPIRED
        answered = await self._responses(job) if state is not None else []
        by_id: dict[str, types.InlinedResponse] = {}
        for index, response in enumerate(answered):
            custom_id = (response.metadata or {}).get(CUSTOM_ID)
            if custom_id is None and index < len(batch.items):
                custom_id = batch.items[index].custom_id
            if custom_id is not None:
                by_id[custom_id] = response
        outcomes = tuple(
            outcome(batch.spec, item, by_id.get(item.custom_id), final) for item in batch.items
        )
        error = job.error.message if job.error is not None else None
        return BridgeResult(batch.name, final, outcomes, error)

    async def aclose(self) -> None:
        """Close the SDK's connections."""
        await self._client.aio.aclose()
        self._client.close()


def check_item(item: BatchItem) -> None:
    """Raise ValidationFailed when the bridge cannot send the item (tools, tool turns)."""
    file_line(item)


def _state(job: types.BatchJob) -> BridgeState:
    return _STATES.get(job.state, BridgeState.PENDING) if job.state else BridgeState.PENDING
