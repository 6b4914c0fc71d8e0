"""The request queue on a Redis broker, read so that no event is ever only in flight.

Kombu's Redis transport takes a message with BRPOP: the list gives it up before the
consumer holds it anywhere else, so a reply lost on a connection gone silent (or a consumer
killed just then) loses it. Here each event moves (LMOVE, one step on the server) from the
queue to a list of this consumer's own, and leaves that list only when it is acked or
requeued. A consumer that reconnects takes up what its own list holds; a consumer that dies
stops renewing its liveness key, and any other consumer moves its list back to the queue.

The queue is the list Kombu publishes to (its name, with Kombu's priority lists beside it),
and messages are Kombu's JSON envelopes, so publishers use plain Kombu as on any broker.
"""

import base64
import os
import socket
import time
from typing import Any, Final, cast

import orjson
import redis
from kombu.messaging import Producer

from pipeline.bus.connection import connect, liveness_options
from pipeline.bus.sources import publish_dead_letter
from pipeline.bus.topology import Topology
from pipeline.settings import Settings

# Kombu's separator and priority steps for a queue's lists (its defaults: 0 is the queue).
_PRIORITY_SEP: Final = "\x06\x16"
_PRIORITIES: Final = (3, 6, 9)

# Moves up to ARGV[1] messages into the consumer's list (KEYS[1]) from the first lists of
# KEYS[2..] that have any, oldest first, and returns them.
_TAKE: Final = """
local taken = {}
local most = tonumber(ARGV[1])
for i = 2, #KEYS do
  while #taken < most do
    local item = redis.call('LMOVE', KEYS[i], KEYS[1], 'RIGHT', 'LEFT')
    if not item then break end
    taken[#taken + 1] = item
  end
end
return taken
"""

# Moves a dead consumer's list (KEYS[1]) back to the queue (KEYS[2]), oldest next in line.
_RETURN: Final = """
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do moved = moved + 1 end
redis.call('DEL', KEYS[1])
return moved
"""


def consumer_id() -> str:
    """A name for one bridge's consumer: host, process and a random part."""
    return f"{socket.gethostname()}.{os.getpid()}.{os.urandom(4).hex()}"


class RedisDelivery:
    """One event held in this consumer's list."""

    def __init__(self, raw: bytes, source: "RedisSource") -> None:
        self.raw = raw
        envelope = orjson.loads(raw)
        properties = envelope.get("properties") or {}
        body = envelope.get("body") or ""
        if properties.get("body_encoding") == "base64":
            self.body: bytes = base64.b64decode(body)
        else:
            self.body = body.encode() if isinstance(body, str) else bytes(body)
        self.headers: dict[str, Any] = dict(envelope.get("headers") or {})
        self.content_type: str = envelope.get("content-type") or "application/octet-stream"
        self.content_encoding: str = envelope.get("content-encoding") or "binary"
        self._source = source

    def ack(self) -> None:
        """Drop it from this consumer's list."""
        self._source.forget(self.raw)

    def requeue(self) -> None:
        """Back to the queue, next in line."""
        self._source.give_back(self.raw)


class RedisSource:
    """The request queue read with LMOVE into a list of this consumer's own."""

    def __init__(self, settings: Settings, topology: Topology, consumer: str) -> None:
        self._topology = topology
        queue = topology.requests_queue.name
        self._queue = queue
        self._lists = [queue, *(f"{queue}{_PRIORITY_SEP}{p}" for p in _PRIORITIES)]
        self._inflight = self.inflight_key(consumer)
        self._alive = f"{queue}:pb-consumer:{consumer}"
        beat_s = max(1.0, settings.broker_heartbeat_s / 2 or 5.0)
        self._beat_s = beat_s
        self._alive_ms = int(beat_s * 3 * 1000)
        self._beaten_at = 0.0
        # Declares the queue (and its binding, which routes publishes to it) and the DLQ the
        # Kombu way; dead letters are published through it too.
        self._kombu = connect(settings)
        channel = self._kombu.channel()
        for entity in (topology.requests_queue, topology.dead_letter_queue):
            entity.bind(channel).declare()
        self._producer = Producer(channel)
        options = liveness_options(settings)
        io_s = float(options.get("socket_timeout") or 30.0)
        # A blocking move waits up to its own timeout for a reply; beyond that, silence.
        self._client = redis.Redis.from_url(
            _plain_redis_url(settings.broker_url),
            socket_timeout=io_s + 2.0,
            socket_connect_timeout=float(options.get("socket_connect_timeout") or 5.0),
            socket_keepalive=True,
            health_check_interval=int(options.get("health_check_interval") or 0),
        )
        self._take = self._client.register_script(_TAKE)
        self._return = self._client.register_script(_RETURN)
        # What this consumer held when its last connection broke: taken up first.
        self._pending = cast(list[bytes], self._client.lrange(self._inflight, 0, -1))[::-1]
        self.beat()

    def inflight_key(self, consumer: str) -> str:
        """The list that holds what `consumer` has taken and not yet acked."""
        return f"{self._queue}:pb-inflight:{consumer}"

    def receive(self, max_count: int, timeout_s: float) -> list[RedisDelivery]:
        """Up to `max_count` events; waits at most `timeout_s` for the first."""
        if self._pending:
            held, self._pending = self._pending[:max_count], self._pending[max_count:]
            return [RedisDelivery(raw, self) for raw in held]
        taken = cast(list[bytes], self._take(keys=[self._inflight, *self._lists], args=[max_count]))
        if not taken and timeout_s > 0:
            item = self._client.blmove(
                self._queue,
                self._inflight,
                timeout_s,  # type: ignore[arg-type]  # redis-py sends it as a float
                "RIGHT",
                "LEFT",
            )
            taken = [cast(bytes, item)] if item is not None else []
        return [RedisDelivery(raw, self) for raw in taken]

    def forget(self, raw: bytes) -> None:
        """Drop one held event (it was handled)."""
        self._client.lrem(self._inflight, 1, raw)  # type: ignore[arg-type]

    def give_back(self, raw: bytes) -> None:
        """Return one held event to the queue, next in line."""
        with self._client.pipeline(transaction=True) as pipe:
            pipe.lrem(self._inflight, 1, raw)  # type: ignore[arg-type]
            pipe.rpush(self._queue, raw)
            pipe.execute()

    def dead_letter(self, delivery: RedisDelivery, reason: str) -> None:
        """Publish the event to the dead-letter exchange."""
        publish_dead_letter(self._producer, self._topology, delivery, reason)

    def beat(self) -> None:
        """Renew this consumer's liveness, and return dead consumers' events to the queue."""
        now = time.monotonic()
        if now - self._beaten_at < self._beat_s:
            return
        self._beaten_at = now
        self._client.set(self._alive, b"1", px=self._alive_ms)
        prefix = self.inflight_key("")
        for key in self._client.scan_iter(match=f"{_glob_escape(prefix)}*", count=100):
            owner = key.decode()[len(prefix) :]
            if key.decode() == self._inflight:
                continue
            if not self._client.exists(f"{self._queue}:pb-consumer:{owner}"):
                self._return(keys=[key, self._queue])

    def close(self) -> None:
        """Close both connections."""
        self._client.close()
        self._kombu.collect()


def _plain_redis_url(url: str) -> str:
    # Kombu accepts `redis+socket://` and friends; redis-py wants its own schemes.
    return url.replace("redis+socket://", "unix://", 1)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
