"""The Redis webhook registry of production: endpoints and attempt logs every worker shares."""

import os
import time
from collections.abc import Callable
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from pipeline.errors import ServiceBusy
from pipeline.redis_client import RedisKeys, millis
from pipeline.webhooks.registry import _ATTEMPTS_KEPT, ROTATION_OVERLAP_S
from pipeline.webhooks.signing import new_secret
from schemas.webhooks import Attempt, Endpoint, EndpointCreate, EventType

_CAS_TRIES = 50

# An endpoint is one hash: `endpoint` (its JSON as created), `secrets` (JSON
# [[secret, expires_at | null], ...], newest first), `disabled` (JSON [at, reason]) and
# `failing_since` (JSON). Each changing field is written on its own and only from the
# value its writer read, so two workers updating one endpoint never undo each other.
_SET_IF = """
-- KEYS: endpoint. ARGV: field, the value it must hold ('' for none), the new value
if redis.call('HEXISTS', KEYS[1], 'endpoint') == 0 then return -1 end
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

_RECORD = """
-- KEYS: job log, tracked jobs[, endpoint, endpoint log].
-- ARGV: attempt JSON, attempts kept, job log ttl ms, jobs tracked, job id, job log key prefix
local kept = tonumber(ARGV[2])
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('RPUSH', KEYS[4], ARGV[1])
  redis.call('LTRIM', KEYS[4], -kept, -1)
end
if redis.call('RPUSH', KEYS[1], ARGV[1]) == 1 then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[5])
  local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
  if over > 0 then
    for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, over - 1)) do
      redis.call('DEL', ARGV[6] .. old)
    end
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
  end
end
redis.call('LTRIM', KEYS[1], -kept, -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


class RedisWebhookRegistry:
    """Endpoints and attempt logs in Redis; a job's log lasts `retention_s` past its last entry."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        max_jobs_tracked: int,
        retention_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._keys = RedisKeys(prefix)
        self._max_jobs_tracked = max_jobs_tracked
        self._retention_ms = millis(retention_s)
        self._clock = clock
        self._set_if = redis.register_script(_SET_IF)
        self._record = redis.register_script(_RECORD)

    async def create(self, tenant: str, spec: EndpointCreate) -> tuple[Endpoint, str]:
        """A new endpoint and its secret (the only time the secret is shown)."""
        endpoint = Endpoint(
            id=f"ep_{os.urandom(10).hex()}",
            tenant=tenant,
            url=str(spec.url),
            events=spec.events,
            description=spec.description,
            created_at=self._clock(),
        )
        secret = new_secret()
        secrets = orjson.dumps([[secret, None]])
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._endpoint(endpoint.id),
                mapping={"endpoint": endpoint.model_dump_json(), "secrets": secrets},
            )
            pipe.zadd(self._tenant(tenant), {endpoint.id: endpoint.created_at})
            await pipe.execute()
        return endpoint, secret

    async def get(self, endpoint_id: str) -> Endpoint | None:
        """The endpoint, or None."""
        fields = await self._redis.hgetall(self._endpoint(endpoint_id))
        return _parse(cast(dict[bytes, bytes], fields))

    async def endpoints(self, tenant: str) -> list[Endpoint]:
        """A tenant's endpoints, oldest first."""
        ids = cast(list[bytes], await self._redis.zrange(self._tenant(tenant), 0, -1))
        async with self._redis.pipeline(transaction=False) as pipe:
            for endpoint_id in ids:
                pipe.hgetall(self._endpoint(endpoint_id.decode()))
            found = [_parse(fields) for fields in await pipe.execute()]
        return [e for e in found if e is not None]

    async def delete(self, endpoint_id: str) -> bool:
        """Remove an endpoint; False if there was none."""
        endpoint = await self.get(endpoint_id)
        if endpoint is None:
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._endpoint(endpoint_id))
            pipe.delete(self._keys("endpoint-attempts", endpoint_id))
            pipe.zrem(self._tenant(endpoint.tenant), endpoint_id)
            deleted, _, _ = await pipe.execute()
        return bool(deleted)

    async def rotate(self, endpoint_id: str) -> str | None:
        """A new secret; the old one keeps signing alongside for 24 h."""
        for _ in range(_CAS_TRIES):
            held = await self._redis.hget(self._endpoint(endpoint_id), "secrets")
            if held is None:
                return None
            now = self._clock()
            secret = new_secret()
            kept = [
                [s, now + ROTATION_OVERLAP_S if exp is None else exp]
                for s, exp in orjson.loads(held)
                if exp is None or exp > now
            ]
            rotated = orjson.dumps([[secret, None], *kept])
            outcome = await self._set_if(
                keys=[self._endpoint(endpoint_id)], args=("secrets", held, rotated)
            )
            if outcome != 0:
                return secret if outcome == 1 else None
        raise ServiceBusy(f"endpoint {endpoint_id} is rotating too often; try again later")

    async def secrets(self, endpoint_id: str) -> list[str]:
        """Every secret that signs for the endpoint now, newest first."""
        held = await self._redis.hget(self._endpoint(endpoint_id), "secrets")
        now = self._clock()
        live = orjson.loads(held) if held is not None else []
        return [str(s) for s, exp in live if exp is None or exp > now]

    async def subscribers(self, tenant: str, event: EventType) -> list[Endpoint]:
        """The tenant's enabled endpoints that want `event`."""
        return [
            e for e in await self.endpoints(tenant) if e.disabled_at is None and event in e.events
        ]

    async def disable(self, endpoint_id: str, reason: str) -> None:
        """Stop delivering to an endpoint."""
        disabled = orjson.dumps([self._clock(), reason])
        await self._set_if(keys=[self._endpoint(endpoint_id)], args=("disabled", "", disabled))

    async def failed(self, endpoint_id: str, at: float) -> Endpoint | None:
        """Note a failed delivery; the endpoint with the start of its failing streak."""
        since = orjson.dumps(at)
        await self._set_if(keys=[self._endpoint(endpoint_id)], args=("failing_since", "", since))
        return await self.get(endpoint_id)

    async def succeeded(self, endpoint_id: str) -> None:
        """Note a delivery: the failing streak, if any, is over."""
        await self._redis.hdel(self._endpoint(endpoint_id), "failing_since")

    async def record(self, attempt: Attempt) -> None:
        """Keep an attempt in the endpoint's and the job's logs."""
        keys = [self._keys("job-attempts", attempt.job_id), self._keys("job-attempts-tracked")]
        if attempt.endpoint_id is not None:
            # Only while the endpoint exists, so a delete racing a delivery leaves no log.
            keys += [
                self._endpoint(attempt.endpoint_id),
                self._keys("endpoint-attempts", attempt.endpoint_id),
            ]
        args = (
            attempt.model_dump_json(),
            _ATTEMPTS_KEPT,
            self._retention_ms,
            self._max_jobs_tracked,
            attempt.job_id,
            self._keys("job-attempts", ""),
        )
        await self._record(keys=keys, args=args)

    async def attempts_for_endpoint(self, endpoint_id: str) -> list[Attempt]:
        """The endpoint's most recent attempts, oldest first."""
        return await self._attempts(self._keys("endpoint-attempts", endpoint_id))

    async def attempts_for_job(self, job_id: str) -> list[Attempt]:
        """Every recorded attempt to deliver a job's completion, oldest first."""
        return await self._attempts(self._keys("job-attempts", job_id))

    async def _attempts(self, key: str) -> list[Attempt]:
        raws = cast(list[bytes], await self._redis.lrange(key, 0, -1))
        return [Attempt.model_validate_json(raw) for raw in raws]

    def _endpoint(self, endpoint_id: str) -> str:
        return self._keys("endpoint", endpoint_id)

    def _tenant(self, tenant: str) -> str:
        return self._keys("endpoints", tenant)


def _parse(fields: dict[bytes, bytes]) -> Endpoint | None:
    """The endpoint from its hash, with the fields that change since it was created."""
    created = fields.get(b"endpoint")
    if created is None:
        return None
    data: dict[str, Any] = orjson.loads(created)
    if b"disabled" in fields:
        data["disabled_at"], data["disabled_reason"] = orjson.loads(fields[b"disabled"])
    if b"failing_since" in fields:
        data["failing_since"] = orjson.loads(fields[b"failing_since"])
    return Endpoint.model_validate(data)
