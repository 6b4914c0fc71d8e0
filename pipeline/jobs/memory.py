"""The in-memory job store of the embedded default: bounded, and woken by events."""

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Sequence

from pipeline.errors import ServiceBusy
from pipeline.jobs.store import JobChange, ending_refused, wait_for_finish
from schemas import ErrorDetail, GenerateResponse, JobState
from schemas.jobs import TERMINAL_STATES, Job, JobPage

_WATCH_QUEUE = 32
_PURGE_EVERY_S = 1.0


class MemoryJobStore:
    """Jobs in a dict, oldest first; finished jobs expire after `retention_s`."""

    def __init__(
        self,
        *,
        retention_s: float,
        max_jobs: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._retention_s = retention_s
        self._max_jobs = max_jobs
        self._clock = clock
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._watchers: dict[str, set[asyncio.Queue[Job]]] = {}
        self._claims: dict[tuple[str, str], float] = {}
        self._idempotency: dict[tuple[str, str], tuple[str, str, float]] = {}
        # Unfinished jobs by their last change, and ended jobs whose completion is not out.
        self._active: dict[str, float] = {}
        self._outbox: dict[str, float] = {}
        self._purged_at = 0.0

    async def create(self, job: Job) -> bool:
        """Record a new job; False if a job with that id exists."""
        self._purge()
        if job.id in self._jobs:
            return False
        if len(self._jobs) >= self._max_jobs:
            raise ServiceBusy("the job store is full; try again later")
        self._jobs[job.id] = job
        self._track(job)
        self._notify(job)
        return True

    async def delete(self, job_id: str) -> None:
        """Forget a job that was never accepted after all."""
        self._jobs.pop(job_id, None)
        self._active.pop(job_id, None)
        self._outbox.pop(job_id, None)

    async def get(self, job_id: str) -> Job | None:
        """The job, or None if unknown (or expired)."""
        job = self._jobs.get(job_id)
        if job is not None and self._expired(job):
            self._jobs.pop(job_id, None)
            return None
        return job

    async def transition(
        self,
        job_id: str,
        state: JobState,
        *,
        stage: str | None = None,
        result: GenerateResponse | None = None,
        error: ErrorDetail | None = None,
        finished_at: float | None = None,
        when: Callable[[Job], bool] | None = None,
    ) -> Job | None:
        """Move a job on; None if it is unknown, finished (finished is final) or fails `when`."""
        job = await self.get(job_id)
        if job is None or job.finished or (when is not None and not when(job)):
            return None
        update: dict[str, object] = {"state": state}
        if stage is not None:
            update["stage"] = stage
        if result is not None:
            update["result"] = result
        if error is not None:
            update["error"] = error
        if state in TERMINAL_STATES:
            # A job's record and its completion event must agree on when it finished.
            update["finished_at"] = finished_at if finished_at is not None else self._clock()
        return self._replace(job, update)

    async def amend(self, job_id: str, change: JobChange) -> Job | None:
        """Apply `change` to an unfinished job, atomically; the job as changed, or None if it
        is unknown, finished or left as it is. It never ends a job (that is `transition`'s)."""
        job = await self.get(job_id)
        if job is None or job.finished:
            return None
        update = change(job)
        if update is None:
            return None
        ending_refused(update)
        return self._replace(job, update)

    def _replace(self, job: Job, update: dict[str, object]) -> Job:
        job = job.model_copy(update={**update, "updated_at": self._clock()})
        self._jobs[job.id] = job
        self._track(job)
        self._notify(job)
        return job

    async def list(
        self, *, tenant: str, state: JobState | None, limit: int, cursor: str | None
    ) -> JobPage:
        """Recent jobs of a tenant, newest first, a page at a time."""
        self._purge()
        page: list[Job] = []
        started = cursor is None
        for job_id in reversed(self._jobs):
            if not started:
                started = job_id == cursor
                continue
            job = self._jobs[job_id]
            if job.tenant != tenant or (state is not None and job.state is not state):
                continue
            if len(page) == limit:
                return JobPage(data=tuple(page), next_cursor=page[-1].id)
            page.append(job)
        return JobPage(data=tuple(page))

    async def watch(self, job_id: str) -> AsyncGenerator[Job, None]:
        """The job now and at each change after, ending with its final state."""
        queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=_WATCH_QUEUE)
        self._watchers.setdefault(job_id, set()).add(queue)
        try:
            job = await self.get(job_id)
            while job is not None:
                yield job
                if job.finished:
                    return
                job = await queue.get()
        finally:
            watchers = self._watchers.get(job_id)
            if watchers is not None:
                watchers.discard(queue)
                if not watchers:
                    del self._watchers[job_id]

    async def wait(self, job_id: str, timeout_s: float) -> Job | None:
        """The job once finished, or as it is when `timeout_s` runs out."""
        return await wait_for_finish(self, job_id, timeout_s)

    async def claim(self, kind: str, key: str, ttl_s: float) -> bool:
        """True for the first claim of (kind, key) within `ttl_s`; False after."""
        now = self._clock()
        expires = self._claims.get((kind, key))
        if expires is not None and expires > now:
            return False
        self._claims[(kind, key)] = now + ttl_s
        return True

    async def release(self, kind: str, key: str) -> None:
        """Undo a claim, so the work it guarded may be tried again."""
        self._claims.pop((kind, key), None)

    async def claimed(self, kind: str, key: str) -> bool:
        """Whether (kind, key) is claimed now."""
        expires = self._claims.get((kind, key))
        return expires is not None and expires > self._clock()

    async def stalled(self, idle_s: float, limit: int) -> Sequence[Job]:
        """Unfinished jobs that have not changed for `idle_s`, oldest change first."""
        return self._older(self._active, self._clock() - idle_s, limit)

    async def undelivered(self, age_s: float, limit: int) -> Sequence[Job]:
        """Jobs that ended `age_s` ago or more and whose completion is not yet delivered."""
        return self._older(self._outbox, self._clock() - age_s, limit)

    async def delivered(self, job_id: str) -> None:
        """Take a job's completion out of the outbox: it went out."""
        self._outbox.pop(job_id, None)

    async def reserve_idempotency_key(
        self, tenant: str, key: str, fingerprint: str, job_id: str, ttl_s: float
    ) -> tuple[str, str] | None:
        """Reserve `key` for `job_id`; None if new, else the (fingerprint, job id) it holds."""
        now = self._clock()
        held = self._idempotency.get((tenant, key))
        if held is not None and held[2] > now:
            return held[0], held[1]
        self._idempotency[(tenant, key)] = (fingerprint, job_id, now + ttl_s)
        return None

    async def drop_idempotency_key(self, tenant: str, key: str) -> None:
        """Forget an idempotency key (its job was never accepted)."""
        self._idempotency.pop((tenant, key), None)

    def _track(self, job: Job) -> None:
        if job.finished_at is None:
            self._active[job.id] = job.updated_at
        else:
            self._active.pop(job.id, None)
            self._outbox[job.id] = job.finished_at

    def _older(self, index: dict[str, float], before: float, limit: int) -> Sequence[Job]:
        """Up to `limit` jobs of `index` stamped before `before`, oldest first."""
        due = sorted((at, job_id) for job_id, at in index.items() if at <= before)
        found = []
        for _, job_id in due:
            job = self._jobs.get(job_id)
            if job is None:
                index.pop(job_id, None)  # expired or deleted
                continue
            found.append(job)
            if len(found) == limit:
                break
        return found

    def _notify(self, job: Job) -> None:
        for queue in self._watchers.get(job.id, ()):
            if queue.full():
                # A slow watcher only needs the latest state, so drop what it missed.
                queue.get_nowait()
            queue.put_nowait(job)

    def _expired(self, job: Job) -> bool:
        return job.finished_at is not None and job.finished_at + self._retention_s < self._clock()

    def _purge(self) -> None:
        """Drop expired jobs, claims and keys; a full scan, so at most once a second."""
        now = self._clock()
        if now - self._purged_at < _PURGE_EVERY_S:
            return
        self._purged_at = now
        for job_id in [j for j, job in self._jobs.items() if self._expired(job)]:
            del self._jobs[job_id]
            self._outbox.pop(job_id, None)
        self._claims = {k: exp for k, exp in self._claims.items() if exp > now}
        self._idempotency = {k: v for k, v in self._idempotency.items() if v[2] > now}
