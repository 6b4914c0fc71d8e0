"""The Redis job store of production: one job record shared by every ingress and worker."""

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import cast

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from pipeline.errors import ServiceBusy
from pipeline.jobs.store import JobChange, ending_refused, wait_for_finish
from pipeline.redis_client import RedisKeys, millis
from schemas import ErrorDetail, GenerateResponse, JobState
from schemas.jobs import TERMINAL_STATES, Job, JobPage

# Unfinished jobs expire too, this many retentions after their last change, so a job
# whose worker vanished does not stay forever.
_SAFETY_RETENTIONS = 7
# A watcher re-reads the job after this long without a message, in case one was lost.
_POLL_S = 5.0
_SUBSCRIBE_S = 5.0
_LIST_BATCH = 100
_CAS_TRIES = 50
_CURSOR = re.compile(r"\d{16}:[A-Za-z0-9_.:-]+")

# Each job key is a hash {v: version, job: JSON}; every change bumps v and publishes
# "<v>:<JSON>", so a watcher can tell a stale message from a new one.
_CREATE = """
-- KEYS: job, live jobs, tenant's list, active jobs. ARGV: JSON, ttl ms, max jobs, live entry,
-- list entry, channel, job id, its last change. A live entry (scored by expiry) is
-- "<list key>\\n<list entry>".
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
-- A few expired jobs at a time leave the live set and their tenant's list.
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. now, 'LIMIT', 0, 100)) do
  local list, entry = string.match(dead, '^(.*)\\n([^\\n]*)$')
  redis.call('ZREM', list, entry)
  redis.call('ZREM', KEYS[2], dead)
end
if redis.call('ZCOUNT', KEYS[2], now, '+inf') >= tonumber(ARGV[3]) then return -1 end
redis.call('HSET', KEYS[1], 'v', 1, 'job', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[4])
redis.call('ZADD', KEYS[3], 0, ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[8], ARGV[7])
redis.call('PUBLISH', ARGV[6], '1:' .. ARGV[1])
return 1
"""

_REPLACE = """
-- KEYS: job, live jobs, active jobs, outbox. ARGV: live entry, version read, new JSON, ttl ms,
-- channel, job id, its last change, 1 if it has ended. An ended job leaves the active jobs
-- and enters the outbox in the same step that records its end.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return -1 end
if v ~= ARGV[2] then return 0 end
v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'job', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
if ARGV[8] == '1' then
  redis.call('ZREM', KEYS[3], ARGV[6])
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[6])
else
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[6])
end
redis.call('PUBLISH', ARGV[5], v .. ':' .. ARGV[3])
return 1
"""


class RedisJobStore:
    """Jobs in Redis; finished jobs expire after `retention_s`, at most `max_jobs` live."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        retention_s: float,
        max_jobs: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._keys = RedisKeys(prefix)
        self._retention_s = retention_s
        self._max_jobs = max_jobs
        self._clock = clock
        self._live = self._keys("jobs-live")
        # Unfinished jobs scored by their last change; ended ones whose completion is not out.
        self._active = self._keys("jobs-active")
        self._outbox = self._keys("jobs-outbox")
        self._create = redis.register_script(_CREATE)
        self._replace = redis.register_script(_REPLACE)

    async def create(self, job: Job) -> bool:
        """Record a new job; False if a job with that id exists."""
        keys = [self._job(job.id), self._live, self._list(job.tenant), self._active]
        ttl_ms, channel = self._ttl_ms(job), self._channel(job.id)
        data, live = job.model_dump_json(), self._live_entry(job)
        args = (data, ttl_ms, self._max_jobs, live, _entry(job), channel, job.id, job.updated_at)
        outcome = await self._create(keys=keys, args=args)
        if outcome == -1:
            raise ServiceBusy("the job store is full; try again later")
        return bool(outcome == 1)

    async def delete(self, job_id: str) -> None:
        """Forget a job that was never accepted after all."""
        job = await self.get(job_id)
        if job is not None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._job(job_id))
                pipe.zrem(self._live, self._live_entry(job))
                pipe.zrem(self._list(job.tenant), _entry(job))
                pipe.zrem(self._active, job_id)
                pipe.zrem(self._outbox, job_id)
                await pipe.execute()

    async def get(self, job_id: str) -> Job | None:
        """The job, or None if unknown (or expired)."""
        raw = await self._redis.hget(self._job(job_id), "job")
        return None if raw is None else Job.model_validate_json(raw)

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

        def change(job: Job) -> dict[str, object] | None:
            if when is not None and not when(job):
                return None
            given: dict[str, object] = {"stage": stage, "result": result, "error": error}
            update = {k: v for k, v in given.items() if v is not None}
            update["state"] = state
            if state in TERMINAL_STATES:
                # A job's record and its completion event must agree on when it finished.
                update["finished_at"] = finished_at if finished_at is not None else self._clock()
            return update

        return await self._swap(job_id, change)

    async def amend(self, job_id: str, change: JobChange) -> Job | None:
        """Apply `change` to an unfinished job, atomically; the job as changed, or None if it
        is unknown, finished or left as it is. It never ends a job (that is `transition`'s)."""

        def checked(job: Job) -> dict[str, object] | None:
            update = change(job)
            if update is not None:
                ending_refused(update)
            return update

        return await self._swap(job_id, checked)

    async def _swap(self, job_id: str, change: JobChange) -> Job | None:
        """Write `change` of an unfinished job, read and written again if it moved between."""
        for _ in range(_CAS_TRIES):
            held = await self._load(job_id)
            if held is None or held[1].finished:
                return None
            version, job = held
            update = change(job)
            if update is None:
                return None
            now = self._clock()
            job = job.model_copy(update={**update, "updated_at": now})
            # The write only lands if nobody changed the job since it was read, so a
            # finished job can never be moved on by a writer that read it unfinished.
            keys = [self._job(job_id), self._live, self._active, self._outbox]
            data, ttl_ms, channel = job.model_dump_json(), self._ttl_ms(job), self._channel(job_id)
            ended = job.finished_at is not None
            stamp = job.finished_at if job.finished_at is not None else now
            args = (
                self._live_entry(job),
                version,
                data,
                ttl_ms,
                channel,
                job_id,
                stamp,
                int(ended),
            )
            outcome = await self._replace(keys=keys, args=args)
            if outcome != 0:
                return job if outcome == 1 else None
        raise ServiceBusy(f"job {job_id} is changing too often to update; try again later")

    async def list(
        self, *, tenant: str, state: JobState | None, limit: int, cursor: str | None
    ) -> JobPage:
        """Recent jobs of a tenant, newest first, a page at a time."""
        if cursor is not None and not _CURSOR.fullmatch(cursor):
            return JobPage(data=())  # like a cursor of no job: nothing after it
        # Entries sort by creation time, so the cursor (the last entry shown) stays a
        # valid place to resume even after its own job has expired.
        bound = b"+" if cursor is None else b"(" + cursor.encode()
        page: list[Job] = []
        next_cursor = None
        while next_cursor is None:
            entries = cast(
                list[bytes],
                await self._redis.zrange(
                    self._list(tenant),
                    bound,
                    b"-",
                    desc=True,
                    bylex=True,
                    offset=0,
                    num=_LIST_BATCH,
                ),
            )
            async with self._redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    pipe.hget(self._job(entry.partition(b":")[2].decode()), "job")
                raws: list[bytes | None] = await pipe.execute()
            for entry, raw in zip(entries, raws, strict=True):
                # An expired job stays listed until the next create prunes it.
                job = None if raw is None else Job.model_validate_json(raw)
                if job is None or _entry(job).encode() != entry:
                    continue
                if state is not None and job.state is not state:
                    continue
                if len(page) == limit:
                    next_cursor = _entry(page[-1])
                    break
                page.append(job)
            if len(entries) < _LIST_BATCH:
                break
            bound = b"(" + entries[-1]
        return JobPage(data=tuple(page), next_cursor=next_cursor)

    async def watch(self, job_id: str) -> AsyncGenerator[Job, None]:
        """The job now and at each change after, ending with its final state."""
        pubsub = self._redis.pubsub()
        try:
            # Subscribed before the first read, so no change can fall between the two.
            await _subscribe(pubsub, self._channel(job_id))
            held = await self._load(job_id)
            while held is not None:
                version, job = held
                yield job
                if job.finished:
                    return
                held = await self._next_change(pubsub, job_id, version)
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # unannotated before redis-py 8

    async def wait(self, job_id: str, timeout_s: float) -> Job | None:
        """The job once finished, or as it is when `timeout_s` runs out."""
        return await wait_for_finish(self, job_id, timeout_s)

    async def claim(self, kind: str, key: str, ttl_s: float) -> bool:
        """True for the first claim of (kind, key) within `ttl_s`; False after."""
        claimed = await self._redis.set(
            self._keys.pair("claim", kind, key), b"1", nx=True, px=millis(ttl_s)
        )
        return bool(claimed)

    async def release(self, kind: str, key: str) -> None:
        """Undo a claim, so the work it guarded may be tried again."""
        await self._redis.delete(self._keys.pair("claim", kind, key))

    async def claimed(self, kind: str, key: str) -> bool:
        """Whether (kind, key) is claimed now."""
        return bool(await self._redis.exists(self._keys.pair("claim", kind, key)))

    async def reserve_idempotency_key(
        self, tenant: str, key: str, fingerprint: str, job_id: str, ttl_s: float
    ) -> tuple[str, str] | None:
        """Reserve `key` for `job_id`; None if new, else the (fingerprint, job id) it holds."""
        name = self._keys.pair("idem", tenant, key)
        while True:
            if await self._redis.set(
                name, orjson.dumps([fingerprint, job_id]), nx=True, px=millis(ttl_s)
            ):
                return None
            raw = await self._redis.get(name)
            if raw is not None:  # else it expired between the two calls: try again
                held_print, held_job = orjson.loads(raw)
                return str(held_print), str(held_job)

    async def drop_idempotency_key(self, tenant: str, key: str) -> None:
        """Forget an idempotency key (its job was never accepted)."""
        await self._redis.delete(self._keys.pair("idem", tenant, key))

    async def stalled(self, idle_s: float, limit: int) -> Sequence[Job]:
        """Unfinished jobs that have not changed for `idle_s`, oldest change first."""
        return await self._older(self._active, self._clock() - idle_s, limit)

    async def undelivered(self, age_s: float, limit: int) -> Sequence[Job]:
        """Jobs that ended `age_s` ago or more and whose completion is not yet delivered."""
        return await self._older(self._outbox, self._clock() - age_s, limit)

    async def delivered(self, job_id: str) -> None:
        """Take a job's completion out of the outbox: it went out."""
        await self._redis.zrem(self._outbox, job_id)

    async def _older(self, index: str, before: float, limit: int) -> Sequence[Job]:
        """Up to `limit` jobs of the `index` set stamped before `before`, oldest first."""
        ids = cast(
            list[bytes], await self._redis.zrangebyscore(index, "-inf", before, start=0, num=limit)
        )
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self._job(job_id.decode()), "job")
            raws: list[bytes | None] = await pipe.execute()
        found, gone = [], []
        for job_id, raw in zip(ids, raws, strict=True):
            if raw is None:
                gone.append(job_id)  # expired or deleted: its entry goes too
            else:
                found.append(Job.model_validate_json(raw))
        if gone:
            await self._redis.zrem(index, *gone)
        return found

    async def _load(self, job_id: str) -> tuple[int, Job] | None:
        version, raw = await self._redis.hmget(self._job(job_id), ["v", "job"])
        if version is None or raw is None:
            return None
        return int(version), Job.model_validate_json(raw)

    async def _next_change(self, pubsub: PubSub, job_id: str, version: int) -> tuple[int, Job]:
        """The first state newer than `version`: the latest one published, if several were."""
        while True:
            newest = None
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_POLL_S)
            while message is not None:
                if message["type"] == "message":
                    seen, _, raw = message["data"].partition(b":")
                    if int(seen) > version:
                        version, newest = int(seen), raw
                # A slow watcher needs only the latest state: drain what is already here.
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
            if newest is not None:
                return version, Job.model_validate_json(newest)
            held = await self._load(job_id)
            if held is not None and held[0] > version:
                return held

    def _ttl_ms(self, job: Job) -> int:
        if job.finished_at is None:
            return millis(self._retention_s * _SAFETY_RETENTIONS)
        return millis(job.finished_at + self._retention_s - self._clock())

    def _live_entry(self, job: Job) -> str:
        return f"{self._list(job.tenant)}\n{_entry(job)}"

    def _list(self, tenant: str) -> str:
        return self._keys("jobs", tenant)

    def _job(self, job_id: str) -> str:
        return self._keys("job", job_id)

    def _channel(self, job_id: str) -> str:
        return self._keys("job-events", job_id)


async def _subscribe(pubsub: PubSub, channel: str) -> None:
    """Subscribe, and wait until Redis confirms it: only then is no message missed."""
    await pubsub.subscribe(channel)
    async with asyncio.timeout(_SUBSCRIBE_S):
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "subscribe":
                return


def _entry(job: Job) -> str:
    """The job's place in its tenant's list: creation time in microseconds, then its id."""
    return f"{max(0, round(job.created_at * 1_000_000)):016d}:{job.id}"
