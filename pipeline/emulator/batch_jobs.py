"""Gemini batch jobs the emulator holds: their requests, their state over time, their results.

A job waits `step` in BATCH_STATE_PENDING, runs for another `step`, then answers every
request at once and succeeds (inline requests answered inline, a file's in a file), or,
when a request asked for it (`[[emulator:batch=failed|expired]]`), ends so with no answers; state
moves only when the job is looked at, so nothing runs in the background and a job nobody
polls costs nothing.
"""

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

import orjson

from pipeline.emulator.state import BadRequest, Json

_API: Final = "type.googleapis.com/google.ai.generativelanguage.v1beta"
BATCH_TYPE: Final = f"{_API}.GenerateContentBatch"
OUTPUT_TYPE: Final = f"{_API}.GenerateContentBatchOutput"
# The jobs one emulator keeps; the oldest finished job makes room for a new one.
MAX_JOBS: Final = 256

# Answers one request: `{"response": ...}` or `{"error": {"code", "message"}}`.
Answerer = Callable[[str, Json], Json]
# Stores a batch's responses (JSON Lines) as a file; returns the file's name.
Saver = Callable[[bytes], str]


class BatchState(StrEnum):
    """A batch job's state, as the REST API names it."""

    PENDING = "BATCH_STATE_PENDING"
    RUNNING = "BATCH_STATE_RUNNING"
    SUCCEEDED = "BATCH_STATE_SUCCEEDED"
    FAILED = "BATCH_STATE_FAILED"
    CANCELLED = "BATCH_STATE_CANCELLED"
    EXPIRED = "BATCH_STATE_EXPIRED"

    @property
    def done(self) -> bool:
        """Whether the job has finished, one way or another."""
        return self not in (BatchState.PENDING, BatchState.RUNNING)


def timestamp(wall: float) -> str:
    """Format a Unix time as a protobuf Timestamp in JSON (RFC 3339, UTC)."""
    return (
        datetime.fromtimestamp(wall, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


@dataclass
class BatchJob:
    """One batch job: what it was asked and, once it ran, what it answered."""

    name: str
    model: str
    display_name: str
    requests: list[Json] = field(repr=False)
    created: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    state: BatchState = BatchState.PENDING
    updated: float = field(default_factory=time.time)
    ended: float | None = None
    responses: list[Json] = field(default_factory=list, repr=False)
    # Whether the requests came in a file (keyed lines): the responses go to one too.
    from_file: bool = False
    responses_file: str | None = None
    # How the job ends instead of succeeding (a request's `batch=` directive asked).
    fault: BatchState | None = None

    def advance(self, step_s: float, answer: Answerer, save: Saver) -> None:
        """Move the job on as far as the time since it was created says."""
        if self.state.done:
            return
        elapsed = time.monotonic() - self.started
        if elapsed >= 2 * step_s and self.fault is not None:
            self._finish(self.fault)
        elif elapsed >= 2 * step_s:
            self.responses = [self._answered(item, answer) for item in self.requests]
            if self.from_file:
                lines = b"".join(orjson.dumps(line) + b"\n" for line in self.responses)
                self.responses_file = save(lines)
            self._finish(BatchState.SUCCEEDED)
        elif elapsed >= step_s and self.state is BatchState.PENDING:
            self.state, self.updated = BatchState.RUNNING, time.time()

    def _answered(self, item: Json, answer: Answerer) -> Json:
        result = answer(self.model, item["request"])
        # An inline request's metadata, a file line's key, come back with its answer.
        kept: Json = {name: item[name] for name in ("key", "metadata") if name in item}
        return {**kept, **result}

    def cancel(self) -> None:
        """Stop a job that has not finished; its requests get no answers."""
        if not self.state.done:
            self._finish(BatchState.CANCELLED)

    def _finish(self, state: BatchState) -> None:
        self.state = state
        self.updated = self.ended = time.time()

    def _stats(self) -> Json:
        failed = sum(1 for response in self.responses if "error" in response)
        answered = len(self.responses)
        # int64 fields travel as JSON strings.
        return {
            "requestCount": str(len(self.requests)),
            "successfulRequestCount": str(answered - failed),
            "failedRequestCount": str(failed),
            "pendingRequestCount": str(0 if self.state.done else len(self.requests)),
        }

    def operation(self) -> Json:
        """The job as the long-running Operation the API answers with."""
        metadata: Json = {
            "@type": BATCH_TYPE,
            "name": self.name,
            "displayName": self.display_name,
            "model": f"models/{self.model}",
            "state": self.state.value,
            "createTime": timestamp(self.created),
            "updateTime": timestamp(self.updated),
            "batchStats": self._stats(),
        }
        operation: Json = {"name": self.name, "metadata": metadata, "done": self.state.done}
        if self.ended is not None:
            metadata["endTime"] = timestamp(self.ended)
        if self.state is BatchState.FAILED:
            operation["error"] = {"code": 13, "message": "Emulated batch failure."}
        if self.state is BatchState.SUCCEEDED:
            output: Json = (
                {"responsesFile": self.responses_file}
                if self.responses_file
                else {"inlinedResponses": {"inlinedResponses": self.responses}}
            )
            metadata["output"] = output
            operation["response"] = {"@type": OUTPUT_TYPE, **output}
        return operation


class BatchBook:
    """The jobs in creation order, at most MAX_JOBS of them."""

    def __init__(self, max_jobs: int = MAX_JOBS) -> None:
        self._jobs: OrderedDict[str, BatchJob] = OrderedDict()
        self._max_jobs = max_jobs

    def create(
        self,
        model: str,
        display_name: str,
        requests: list[Json],
        *,
        from_file: bool = False,
        fault: BatchState | None = None,
    ) -> BatchJob:
        """Hold a new pending job; BadRequest when every held job is still running."""
        if len(self._jobs) >= self._max_jobs:
            oldest = next((name for name, job in self._jobs.items() if job.state.done), None)
            if oldest is None:
                raise BadRequest(f"the emulator holds {self._max_jobs} unfinished batches")
            del self._jobs[oldest]
        name = f"batches/{secrets.token_hex(8)}"
        job = BatchJob(name, model, display_name, requests, from_file=from_file, fault=fault)
        self._jobs[job.name] = job
        return job

    def get(self, name: str) -> BatchJob | None:
        """The job of that name (`batches/<id>`), if held."""
        return self._jobs.get(name)

    def delete(self, name: str) -> bool:
        """Forget a job; whether it was held."""
        return self._jobs.pop(name, None) is not None

    def page(self, size: int, start: int) -> tuple[list[BatchJob], int | None]:
        """Up to `size` jobs from position `start`, and where the next page starts."""
        jobs = list(self._jobs.values())[start : start + size]
        end = start + len(jobs)
        return jobs, end if end < len(self._jobs) else None
