"""Per-run bus names on real brokers, and the clean-up of what a run declared.

Every test run gets its own `bus_suffix`, so runs sharing the machine's RabbitMQ and Redis
never see each other's queues; what a run declared is deleted when it ends (on Redis: only
keys in database 15 that contain the run's suffix).
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import redis
from kombu import Connection

from pipeline.bus.celery_app import BATCH_FAMILY, FAMILIES, WEBHOOK_FAMILY
from pipeline.bus.topology import Topology
from tests.support.services import RABBITMQ_URL, REDIS_URL

BROKER_URLS = {"memory": "memory://", "rabbitmq": RABBITMQ_URL, "redis": REDIS_URL}
BROKERS = tuple(BROKER_URLS)
# memory:// lives inside one process: only these brokers reach a separate OS process.
CROSS_PROCESS_BROKERS = ("rabbitmq", "redis")
STAGE_FAMILIES = tuple(sorted({*FAMILIES.values(), WEBHOOK_FAMILY, BATCH_FAMILY}))


@dataclass
class Bus:
    """One test run's slice of a broker: its URL and the suffix on every name it declares."""

    broker: str
    url: str
    suffix: str
    extra_queues: list[str] = field(default_factory=list)

    @property
    def topology(self) -> Topology:
        return Topology(self.suffix)

    def overrides(self) -> dict[str, Any]:
        """Gateway settings that put it on this bus."""
        return {"broker_url": self.url, "bus_suffix": self.suffix}

    def queue_name(self, role: str) -> str:
        """A fresh queue name of this run (so clean-up finds it), remembered for clean-up."""
        name = f"promptbus.test.{role}.{uuid.uuid4().hex[:8]}{self.suffix}"
        self.extra_queues.append(name)
        return name

    def connection(self) -> Connection:
        """A plain Kombu connection to the broker (memory:// is this process's broker)."""
        if self.broker == "memory":
            # The in-process broker polls; its 1 s default would slow every receive.
            return Connection("memory://localhost/", transport_options={"polling_interval": 0.005})
        if self.broker == "redis":
            # Short BRPOPs, so a consumer stops in a tenth of a second rather than a second.
            options = {"polling_interval": 0.1}
            return Connection(self.url, connect_timeout=5, transport_options=options)
        return Connection(self.url, connect_timeout=5)

    def publish_raw(
        self, body: bytes, *, content_type: str = "application/json", test_id: str
    ) -> None:
        """Publish bytes to the requests exchange as any upstream would, tagged for the DLQ."""
        with self.connection() as connection:
            connection.Producer().publish(
                body,
                exchange=self.topology.requests_exchange,
                routing_key="request",
                content_type=content_type,
                content_encoding="utf-8" if content_type == "application/json" else "binary",
                delivery_mode=2,
                headers={"x-test-id": test_id},
                declare=[self.topology.requests_exchange],
                retry=True,
                retry_policy={"max_retries": 3},
            )

    def check_reachable(self) -> None:
        """Fail (never skip) when the broker this test needs is not running."""
        try:
            with self.connection() as connection:
                connection.ensure_connection(max_retries=1, timeout=5)
        except Exception as exc:
            raise AssertionError(
                f"{self.broker} at {self.url} is not reachable ({exc!r}); "
                "see ../shared/SERVICES.md to start it"
            ) from exc

    def cleanup(self) -> None:
        """Delete every queue, exchange (and Redis key) this run declared."""
        if self.broker == "redis":
            with redis.Redis.from_url(self.url) as client:
                keys = list(client.scan_iter(match=f"*{self.suffix}*", count=500))
                if keys:
                    client.delete(*keys)
            return
        topology = self.topology
        queues = [
            topology.requests_queue.name,
            topology.dead_letter_queue.name,
            *(topology.stage_queue(family).name for family in STAGE_FAMILIES),
            *self.extra_queues,
        ]
        exchanges = [
            topology.requests_exchange.name,
            topology.dead_letter_exchange.name,
            topology.completions_exchange.name,
            # Each Celery stage queue has an exchange of the same name.
            *(topology.stage_queue(family).name for family in STAGE_FAMILIES),
        ]
        with self.connection() as connection:
            channel = connection.channel()
            # RabbitMQ deletes what does not exist without a word; memory:// raises KeyError.
            for name in queues:
                with suppress(KeyError):
                    channel.queue_delete(name)
            for name in exchanges:
                with suppress(KeyError):
                    channel.exchange_delete(name)


@contextmanager
def provisioned_bus(broker: str) -> Iterator[Bus]:
    """A bus with a fresh suffix on `broker`, deleted afterwards."""
    bus = Bus(broker, BROKER_URLS[broker], f".t-{uuid.uuid4().hex[:10]}")
    bus.check_reachable()
    try:
        yield bus
    finally:
        bus.cleanup()
