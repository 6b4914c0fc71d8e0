"""The sweeper: finds the jobs that stopped moving and the completions that did not go out.

Defence in depth behind the bus and the steps' own retries. A message can still vanish: a
Redis broker pops a task before a worker holds it, so a reply lost on a connection gone
silent loses the task, and a worker killed mid-step on Redis gives its task back only after
the visibility timeout. So every worker sweeps, every `interval_s`:

- a job that has not changed for `stall_s` is re-driven: dispatched again, from its record,
  as the bridge dispatches a new one (its stages are idempotent, and only the first end of a
  job is recorded, so a re-drive can at worst repeat an upstream call). After
  `MAX_REDRIVES` re-drives it is failed with `job_stalled`;
- a job that ended `OUTBOX_GRACE_S` ago or more and whose completion is still in the
  outbox (its publish failed) is delivered again.

Sweepers of several workers share the work through claims: each stall and each delivery is
taken by one of them.
"""

import time
from collections.abc import Awaitable
from typing import Final

import structlog

from handlers import StageContext, deliver, finish
from pipeline.bus.dispatch import Dispatcher, Fate
from pipeline.errors import JobStalled
from pipeline.periodic import Periodic
from pipeline.transient import TRANSIENT
from schemas import JobState
from schemas.jobs import Job

log = structlog.get_logger("promptbus.sweeper")

MAX_REDRIVES: Final = 3
# A completion whose first delivery failed is retried once it is this old: past the bound of
# the publish that failed, so it is not raced by that publish's own second try.
OUTBOX_GRACE_S: Final = 30.0
_BATCH: Final = 100
_REDRIVE = "redrive"


def sweep_interval_s(stall_s: float) -> float:
    """How often to sweep for a stall bound: a few times per bound, at most every 15 s."""
    return max(0.2, min(15.0, stall_s / 4))


class Sweeper:
    """A task on the stage loop that re-drives stalled jobs and redelivers completions."""

    def __init__(self, ctx: StageContext, dispatcher: Dispatcher, *, stall_s: float) -> None:
        self._ctx = ctx
        self._dispatcher = dispatcher
        self._stall_s = stall_s
        self._rounds = Periodic(
            "promptbus-sweeper",
            sweep_interval_s(stall_s),
            self.sweep,
            expected=TRANSIENT,
            what="sweep",
            logger="promptbus.sweeper",
        )

    def start(self) -> None:
        """Start sweeping (on the running loop)."""
        self._rounds.start()

    async def stop(self) -> None:
        """Stop sweeping."""
        await self._rounds.stop()

    async def sweep(self) -> tuple[int, int]:
        """One sweep; how many jobs it re-drove (or gave up) and completions it delivered.

        A job whose re-drive or delivery fails is left for the next sweep; the others go on.
        """
        jobs = self._ctx.jobs
        redriven = delivered = 0
        for job in await jobs.stalled(self._stall_s, _BATCH):
            if await self._each(job, self._redrive(job)):
                redriven += 1
        for job in await jobs.undelivered(OUTBOX_GRACE_S, _BATCH):
            if await self._each(job, self._redeliver(job)):
                delivered += 1
        return redriven, delivered

    async def _each(self, job: Job, work: Awaitable[bool]) -> bool:
        try:
            return await work
        except TRANSIENT as exc:
            log.warning(
                "sweep of a job failed", job_id=job.id, error=f"{type(exc).__name__}: {exc}"
            )
            return False

    async def _redeliver(self, job: Job) -> bool:
        # One sweeper per delivery attempt, and a new attempt only a grace period later.
        stamp = f"{job.id}@{job.finished_at}:{int(time.time() // OUTBOX_GRACE_S)}"
        if not await self._ctx.jobs.claim("redeliver", stamp, OUTBOX_GRACE_S * 2):
            return False
        return await deliver(self._ctx, job)

    async def _redrive(self, job: Job) -> bool:
        jobs, ttl_s = self._ctx.jobs, self._ctx.claim_ttl_s
        # This stall (the job as last changed) is taken by one sweeper only.
        if not await jobs.claim(_REDRIVE, f"{job.id}@{job.updated_at}", ttl_s):
            return False
        count = 0
        for number in range(1, MAX_REDRIVES + 1):
            if await jobs.claim(_REDRIVE, f"{job.id}#{number}", ttl_s):
                count = number
                break
        idle_s = round(time.time() - job.updated_at, 1)
        if count == 0:
            log.warning(
                "job stalled for good; failed", job_id=job.id, stage=job.stage, idle_s=idle_s
            )
            error = JobStalled(
                f"the job made no progress through {MAX_REDRIVES} re-drives "
                f"(last at stage {job.stage or 'queued'})"
            ).detail()
            await finish(self._ctx, job.id, JobState.FAILED, error=error, stage=job.stage)
            return True
        log.warning(
            "job stalled; re-driven", job_id=job.id, stage=job.stage, idle_s=idle_s, redrive=count
        )
        # Touched first, so it counts as stalled again only a whole bound after this re-drive.
        touched = await jobs.transition(
            job.id, job.state, stage=job.stage, when=lambda held: held.updated_at == job.updated_at
        )
        if touched is None:
            return False  # it moved (or ended) meanwhile
        if (await self._dispatcher.redrive(touched)).fate is Fate.BUSY:
            # Being dispatched right now: not a re-drive, and none is counted.
            await jobs.release(_REDRIVE, f"{job.id}#{count}")
            return False
        return True
