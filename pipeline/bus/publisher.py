"""Publishing events from asyncio code: Kombu on a few threads, bounded in time."""

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from celery.canvas import Signature
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.exceptions import OperationalError
from kombu.messaging import Producer

from pipeline.bus.connection import connect
from pipeline.bus.topology import (
    BUDGET_THRESHOLD_KEY,
    DELTA_KEY,
    FAILED_KEY,
    REQUEST_ROUTING_KEY,
    SUCCEEDED_KEY,
    Topology,
)
from pipeline.errors import BrokerUnavailable
from pipeline.settings import Settings
from pipeline.tracing import current_headers
from schemas import CompletionDelta, CompletionEvent, JobState, RequestEvent
from schemas.batches import BatchFinished, BatchProgress
from schemas.budgets import BudgetThreshold
from schemas.chains import ChainStepEvent

log = structlog.get_logger("promptbus.bus")


# Pauses before trying again after a fast failure (refused, reset), while the bound allows.
_RETRY_PAUSES_S = (0.1, 0.5)

# One send on a producer, given the seconds left of its bound.
Send = Callable[[Producer, float], None]


class EventPublisher:
    """Publishes request and completion events (persistent JSON), deltas and job chains.

    Each publishing thread keeps a connection of its own. Every publish is bounded by
    `publish_timeout_s` (no new try after it) and by its connection's bounded reads and writes,
    so a connection gone silent (no reset, no answer) fails the publish about the bound instead
    of holding the thread. A failed connection is dropped, and so are the other threads'
    connections: they most likely share its path to the broker, so the next publish connects
    afresh.
    """

    def __init__(self, settings: Settings, topology: Topology, *, threads: int = 4) -> None:
        self._settings = settings
        self._topology = topology
        self._timeout_s = settings.publish_timeout_s
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="promptbus-publish")
        self._local = threading.local()
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        # Bumped when a connection fails; a thread whose connection is older opens a new one.
        self._generation = 0

    async def publish_request(self, event: RequestEvent) -> None:
        """Publish a request event; BrokerUnavailable if the broker did not take it in time."""
        body = event.model_dump_json(by_alias=True, exclude_none=True).encode()
        await self._publish(
            self._event(
                body,
                exchange=self._topology.requests_exchange,
                routing_key=REQUEST_ROUTING_KEY,
                correlation_id=event.correlation_id or event.job_id,
                schema=event.schema_,
                declare=[self._topology.requests_queue],
                # The request's trace continues wherever the event is taken (W3C headers).
                extra_headers=current_headers(),
            ),
            tries=1,
        )

    async def publish_completion(self, event: CompletionEvent) -> None:
        """Publish a completion event, routed by outcome.

        Nobody is waiting to try a completion again, so a publish that failed (on a connection
        that went silent, say) is tried once more, on a fresh connection, with a fresh bound.
        """
        succeeded = event.state is JobState.SUCCEEDED
        body = event.model_dump_json(by_alias=True, exclude_none=True).encode()
        await self._publish(
            self._event(
                body,
                exchange=self._topology.completions_exchange,
                routing_key=SUCCEEDED_KEY if succeeded else FAILED_KEY,
                correlation_id=event.correlation_id,
                schema=event.schema_,
                declare=[self._topology.completions_exchange],
            ),
            tries=2,
        )

    async def publish_delta(self, delta: CompletionDelta) -> None:
        """Publish one delta of a streaming job (`completion.delta`), tried once.

        Deltas are transient: not persisted by the broker and not tried again, since the
        job's completion event, published after them, holds the whole answer.
        """
        await self._publish(
            self._event(
                delta.model_dump_json(by_alias=True, exclude_none=True).encode(),
                exchange=self._topology.completions_exchange,
                routing_key=DELTA_KEY,
                correlation_id=delta.correlation_id,
                schema=delta.schema_,
                declare=[self._topology.completions_exchange],
                persistent=False,
            ),
            tries=1,
        )

    async def publish_budget_threshold(self, event: BudgetThreshold) -> None:
        """Publish a `budget.threshold` event (persistent, tried once: it is a notice)."""
        await self._publish(
            self._event(
                event.model_dump_json(by_alias=True, exclude_none=True).encode(),
                exchange=self._topology.completions_exchange,
                routing_key=BUDGET_THRESHOLD_KEY,
                correlation_id=f"budget:{event.tenant}:{event.key_id or '*'}:{event.window}",
                schema=event.schema_,
                declare=[self._topology.completions_exchange],
            ),
            tries=1,
        )

    async def publish_batch_event(self, event: BatchProgress | BatchFinished) -> None:
        """Publish a `batch.*` event (routed by its type), tried once: the record is the truth."""
        await self._publish(
            self._event(
                event.model_dump_json(by_alias=True, exclude_none=True).encode(),
                exchange=self._topology.completions_exchange,
                routing_key=event.type,
                correlation_id=event.batch_id,
                schema=event.schema_,
                declare=[self._topology.completions_exchange],
                persistent=event.type != "batch.progress",
            ),
            tries=1,
        )

    async def publish_chain_step(self, event: ChainStepEvent) -> None:
        """Publish a `chain.step` event, tried once: the job's record is the truth."""
        await self._publish(
            self._event(
                event.model_dump_json(by_alias=True, exclude_none=True).encode(),
                exchange=self._topology.completions_exchange,
                routing_key=event.type,
                correlation_id=event.correlation_id,
                schema=event.schema_,
                declare=[self._topology.completions_exchange],
            ),
            tries=1,
        )

    async def publish_chain(self, chain: Signature, **options: Any) -> None:
        """Queue a Celery chain (its first task's message), bounded like every publish.

        Celery's own retries are off: a publish that gave up at the bound must not land later,
        behind the back of a caller who will try again.
        """

        def send(producer: Producer, _left_s: float) -> None:
            chain.apply_async(producer=producer, retry=False, **options)

        await self._publish(send, tries=1)

    @staticmethod
    def _event(
        body: bytes,
        *,
        exchange: Exchange,
        routing_key: str,
        correlation_id: str,
        schema: str,
        declare: list[Exchange | Queue],
        persistent: bool = True,
        extra_headers: dict[str, str] | None = None,
    ) -> Send:
        headers = {"schema": schema, "correlation_id": correlation_id, **(extra_headers or {})}

        def send(producer: Producer, left_s: float) -> None:
            producer.publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2 if persistent else 1,
                correlation_id=correlation_id,
                headers=headers,
                declare=declare,
                # The wait for the broker's confirm ends at the deadline.
                timeout=left_s,
            )

        return send

    async def _publish(self, send: Send, *, tries: int) -> None:
        loop = asyncio.get_running_loop()
        for tried in range(1, tries + 1):
            try:
                # Waited for to its end, which its deadline and its connection's bounded I/O
                # bring soon: a publish given up on while it still ran could land afterwards,
                # behind the back of a caller told it failed.
                await loop.run_in_executor(self._executor, self._publish_sync, send)
                return
            except Exception as exc:
                log.warning("publish failed", error=f"{type(exc).__name__}: {exc}", tried=tried)
                if tried == tries:
                    raise BrokerUnavailable("the message broker is unavailable; try again") from exc

    def _publish_sync(self, send: Send) -> None:
        deadline = time.monotonic() + self._timeout_s
        for tried in range(len(_RETRY_PAUSES_S) + 1):
            producer = self._producer()
            try:
                send(producer, max(deadline - time.monotonic(), 0.001))
                return
            except Exception as exc:
                connection = producer.connection
                retryable = isinstance(
                    exc,
                    (
                        OperationalError,
                        *connection.recoverable_connection_errors,
                        *connection.recoverable_channel_errors,
                    ),
                )
                self._drop(renew=retryable)
                if tried == len(_RETRY_PAUSES_S) or not retryable:
                    raise
                pause_s = _RETRY_PAUSES_S[tried]
                if time.monotonic() + pause_s >= deadline:
                    raise
                time.sleep(pause_s)

    def _producer(self) -> Producer:
        producer: Producer | None = getattr(self._local, "producer", None)
        if producer is not None and self._local.generation != self._generation:
            # Another thread's connection failed since this one was opened: do not trust it.
            self._drop(renew=False)
            producer = None
        if producer is None:
            # Connects within a third of the bound (a retry still fits), reads and writes
            # within the bound, and sends no heartbeats: it idles between publishes.
            connection = connect(self._settings, publish_bound_s=self._timeout_s)
            with self._lock:
                self._connections.add(connection)
                self._local.generation = self._generation
            producer = Producer(connection)
            self._local.producer = producer
        return producer

    def _drop(self, *, renew: bool) -> None:
        """Close this thread's connection, ignoring its errors (its waits end at the bound).

        With `renew` (it failed as a connection fails), the other threads' connections as old
        as this one are renewed too.
        """
        producer: Producer = self._local.producer
        self._local.producer = None
        with self._lock:
            self._connections.discard(producer.connection)
            if renew and self._local.generation == self._generation:
                self._generation += 1
        producer.connection.collect()

    def close(self) -> None:
        """Stop the publishing threads and close their connections."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            connection.release()
