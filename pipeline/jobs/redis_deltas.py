"""The Redis delta feed of production: a Redis Stream per job, read by every ingress."""

from typing import cast

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from pipeline.jobs.deltas import MAX_WAIT_S, START, FeedEntry, FeedPage, RunEnded
from pipeline.redis_client import RedisKeys, millis
from schemas import CompletionDelta

# The stream's entries: a delta's JSON under "d", or an end marker under "end" and "run".
_DELTA = b"d"
_END = b"end"
_RUN = b"run"

StreamEntries = list[tuple[bytes, dict[bytes, bytes]]]
# XREAD's answer for the streams asked for (RESP2, as redis_from_url speaks): [[name, entries]].
Replies = list[tuple[bytes, StreamEntries]]


class RedisDeltaFeed:
    """Each job's deltas in a stream (XADD with MAXLEN), expiring `retention_s` after a write.

    Writes go through `redis`; waiting reads (XREAD BLOCK) through `readers`, a client whose
    reads may last a wait longer than the usual bound, closed with the feed.
    """

    def __init__(
        self,
        redis: Redis,
        readers: Redis,
        *,
        prefix: str,
        max_deltas: int,
        retention_s: float,
    ) -> None:
        self._redis = redis
        self._readers = readers
        self._keys = RedisKeys(prefix)
        self._max_deltas = max_deltas
        self._ttl_ms = millis(retention_s)

    async def open_run(self, job_id: str) -> int:
        """A new run of the job's generation: its number, 1 for the first."""
        runs = self._keys("job-delta-runs", job_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(runs)
            pipe.pexpire(runs, self._ttl_ms)
            run, _ = await pipe.execute()
        return int(run)

    async def append(self, delta: CompletionDelta) -> None:
        """Add one delta of a run to its job's feed."""
        await self._add(delta.job_id, {_DELTA: delta.model_dump_json().encode()})

    async def end_run(self, job_id: str, run: int, *, answered: bool) -> None:
        """Mark the end of a run in the job's feed."""
        await self._add(job_id, {_END: b"1" if answered else b"0", _RUN: str(run).encode()})

    async def read(
        self, job_id: str, cursor: str = START, *, wait_s: float = 0.0, limit: int = 256
    ) -> FeedPage:
        """Up to `limit` entries after `cursor`, waiting up to `wait_s` (at most 5 s) for one."""
        stream = self._stream(job_id)
        if wait_s > 0:
            block_ms = millis(min(wait_s, MAX_WAIT_S))
            replies = await self._readers.xread({stream: cursor}, count=limit, block=block_ms)
        else:
            replies = await self._redis.xread({stream: cursor}, count=limit)
        if not replies:
            return FeedPage((), cursor)
        entries = cast(Replies, replies)[0][1]
        decoded = tuple(_entry(fields) for _, fields in entries)
        return FeedPage(decoded, entries[-1][0].decode() if entries else cursor)

    async def close(self) -> None:
        """Close the client of the waiting reads."""
        await self._readers.aclose()

    async def _add(self, job_id: str, fields: dict[FieldT, EncodableT]) -> None:
        stream = self._stream(job_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(stream, fields, maxlen=self._max_deltas, approximate=False)
            pipe.pexpire(stream, self._ttl_ms)
            await pipe.execute()

    def _stream(self, job_id: str) -> str:
        return self._keys("job-deltas", job_id)


def _entry(fields: dict[bytes, bytes]) -> FeedEntry:
    if _DELTA in fields:
        return CompletionDelta.model_validate_json(fields[_DELTA])
    return RunEnded(int(fields[_RUN]), fields[_END] == b"1")
