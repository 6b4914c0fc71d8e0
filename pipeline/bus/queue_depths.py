"""How many messages wait in each queue promptbus consumes, sampled for the metrics.

A passive declare asks the broker for a queue's message count without creating it
(RabbitMQ, Redis and the memory transport alike). It is blocking Kombu I/O on a
connection of its own, bounded by a connect timeout: run it off the event loop.
"""

import threading
from contextlib import suppress
from typing import Any, Final

from celery import Celery

from pipeline.bus.celery_app import FAMILIES, WEBHOOK_FAMILY
from pipeline.bus.topology import Topology
from pipeline.metrics import Metrics

_CONNECT_TIMEOUT_S: Final = 1.0


class QueueDepths:
    """Samples the request queue and the stage queues into `metrics` (one sample at a time)."""

    def __init__(self, celery: Celery, topology: Topology, metrics: Metrics) -> None:
        families = sorted({*FAMILIES.values(), WEBHOOK_FAMILY})
        self._names = [topology.requests_queue.name] + [
            topology.stage_queue(family).name for family in families
        ]
        self._celery = celery
        self._metrics = metrics
        self._busy = threading.Lock()

    def sample(self) -> None:
        """Count each queue's messages now; skipped while an earlier sample still runs."""
        if not self._busy.acquire(blocking=False):
            return
        try:
            with self._celery.connection_for_read(connect_timeout=_CONNECT_TIMEOUT_S) as conn:
                conn.ensure_connection(max_retries=1)
                for name in self._names:
                    messages = _count(conn, name)
                    if messages is not None:
                        self._metrics.queue_depth(name, messages)
        finally:
            self._busy.release()


def _count(conn: Any, name: str) -> int | None:
    """The messages in queue `name`; None when it was never declared (nothing used it yet)."""
    channel = conn.channel()
    try:
        _, messages, _ = channel.queue_declare(queue=name, passive=True)
        return int(messages)
    except conn.channel_errors:
        return None
    finally:
        # RabbitMQ closes a channel whose passive declare failed: closing again may fail too.
        with suppress(*conn.channel_errors, *conn.connection_errors):
            channel.close()
