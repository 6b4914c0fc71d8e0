"""Where the bridge takes request events from: a queue it reads in batches, acking each.

On RabbitMQ and `memory://` that is a Kombu consumer: the broker keeps every delivered,
unacknowledged message and hands it out again when the connection closes. Redis is read
with `RedisSource` instead (see `pipeline.bus.redis_source`), since Kombu's Redis
transport pops a message before it holds it anywhere.
"""

from collections import deque
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, Protocol

from kombu.connection import Connection
from kombu.message import Message
from kombu.messaging import Consumer, Producer

from pipeline.bus.connection import HEARTBEAT_RATE, connect
from pipeline.bus.topology import DEAD_LETTER_ROUTING_KEY, REASON_HEADER, Topology
from pipeline.settings import Settings

# How many events the consumer may hold unacknowledged, and so the largest batch.
PREFETCH = 64


class Delivery(Protocol):
    """One event taken from the queue, until it is acked or requeued."""

    @property
    def body(self) -> bytes:
        """The raw body."""
        ...

    @property
    def headers(self) -> dict[str, Any]:
        """The message headers."""
        ...

    def ack(self) -> None:
        """Done with it: the queue forgets it."""
        ...

    def requeue(self) -> None:
        """Not handled: back to the queue, to be taken again."""
        ...


class Source(Protocol):
    """A queue of request events the bridge reads."""

    def receive(self, max_count: int, timeout_s: float) -> "Sequence[Delivery]":
        """Up to `max_count` events; waits at most `timeout_s` for the first."""
        ...

    def dead_letter(self, delivery: Any, reason: str) -> None:
        """Publish the event (one this source delivered) to the dead-letter queue."""
        ...

    def beat(self) -> None:
        """Liveness work between batches; raises once the connection is known to be dead."""
        ...

    def close(self) -> None:
        """Release the connection (a broken one without waiting on it)."""
        ...


class RawDelivery(Protocol):
    """A delivery as it was published: body, headers and content type and encoding."""

    body: bytes
    headers: dict[str, Any]
    content_type: str
    content_encoding: str


def publish_dead_letter(
    producer: Producer, topology: Topology, delivery: RawDelivery, reason: str
) -> None:
    """Publish an event, as it came, to the dead-letter exchange, `reason` in a header."""
    producer.publish(
        delivery.body,
        exchange=topology.dead_letter_exchange,
        routing_key=DEAD_LETTER_ROUTING_KEY,
        content_type=delivery.content_type,
        content_encoding=delivery.content_encoding,
        delivery_mode=2,
        headers={**delivery.headers, REASON_HEADER: reason[:1000]},
        declare=[topology.dead_letter_queue],
    )


class KombuDelivery:
    """A Kombu message as a delivery."""

    def __init__(self, message: Message) -> None:
        self._message = message
        raw = message.body
        self.body: bytes = raw if isinstance(raw, bytes) else raw.encode()
        self.headers: dict[str, Any] = dict(message.headers or {})
        self.content_type: str = message.content_type or "application/octet-stream"
        self.content_encoding: str = message.content_encoding or "binary"

    def ack(self) -> None:
        """Acknowledge it."""
        self._message.ack()

    def requeue(self) -> None:
        """Reject it back to the queue."""
        self._message.requeue()


class KombuSource:
    """The request queue through a Kombu consumer with its own connection."""

    def __init__(self, settings: Settings, topology: Topology) -> None:
        self._topology = topology
        self._connection: Connection = connect(settings)
        channel = self._connection.channel()
        for entity in (topology.requests_queue, topology.dead_letter_queue):
            entity.bind(channel).declare()
        self._producer = Producer(channel)
        # Handled after a drain, never within it: publishing a dead letter waits for the
        # broker's confirm, and on amqp that wait delivers (and so would handle) more messages
        # inside it; nested waits then take each other's confirms and the outer one never ends.
        self._received: deque[Message] = deque()
        self._consumer = Consumer(
            channel,
            [topology.requests_queue],
            on_message=self._received.append,
            prefetch_count=PREFETCH,
            accept=[],
        )
        self._consumer.consume()

    def receive(self, max_count: int, timeout_s: float) -> list[KombuDelivery]:
        """What arrives within `timeout_s`, then whatever else is already here."""
        if not self._received:
            with suppress(TimeoutError):
                self._connection.drain_events(timeout=timeout_s)
        while self._received and len(self._received) < max_count:
            try:
                self._connection.drain_events(timeout=0)
            except TimeoutError:
                break
        count = min(max_count, len(self._received))
        return [KombuDelivery(self._received.popleft()) for _ in range(count)]

    def dead_letter(self, delivery: KombuDelivery, reason: str) -> None:
        """Publish to the dead-letter exchange (confirmed on amqp)."""
        publish_dead_letter(self._producer, self._topology, delivery, reason)

    def beat(self) -> None:
        """Send our heartbeats; raises once the broker's have been missing for two intervals."""
        self._connection.heartbeat_check(rate=HEARTBEAT_RATE)

    def close(self) -> None:
        """Close; on a silent connection each wait ends at the connection's I/O bound."""
        self._connection.collect()
