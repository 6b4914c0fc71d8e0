"""Publishing events from asyncio code: Kombu on a few threads, bounded in time."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Producer

from pipeline.bus.connection import connect
from pipeline.bus.topology import FAILED_KEY, REQUEST_ROUTING_KEY, SUCCEEDED_KEY, Topology
from pipeline.errors import BrokerUnavailable
from pipeline.settings import Settings
from schemas import CompletionEvent, JobState, RequestEvent

log = structlog.get_logger("promptbus.bus")


class EventPublisher:
    """Publishes request and completion events as persistent JSON messages."""

    def __init__(self, settings: Settings, topology: Topology, *, threads: int = 4) -> None:
        self._settings = settings
        self._topology = topology
        self._timeout_s = settings.publish_timeout_s
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="promptbus-publish")
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()

    async def publish_request(self, event: RequestEvent) -> None:
        """Publish a request event; BrokerUnavailable if the broker did not take it in time."""
        await self._publish(
            event.model_dump_json(by_alias=True, exclude_none=True).encode(),
            exchange=self._topology.requests_exchange,
            routing_key=REQUEST_ROUTING_KEY,
            correlation_id=event.correlation_id or event.job_id,
            schema=event.schema_,
            declare=[self._topology.requests_queue],
        )

    async def publish_completion(self, event: CompletionEvent) -> None:
        """Publish a completion event, routed by outcome."""
        succeeded = event.state is JobState.SUCCEEDED
        await self._publish(
            event.model_dump_json(by_alias=True, exclude_none=True).encode(),
            exchange=self._topology.completions_exchange,
            routing_key=SUCCEEDED_KEY if succeeded else FAILED_KEY,
            correlation_id=event.correlation_id,
            schema=event.schema_,
            declare=[self._topology.completions_exchange],
        )

    async def _publish(self, body: bytes, **kwargs: Any) -> None:
        loop = asyncio.get_running_loop()
        try:
            # The thread bounds itself too (retry policy), so it does not publish late.
            async with asyncio.timeout(self._timeout_s + 1):
                await loop.run_in_executor(
                    self._executor, lambda: self._publish_sync(body, **kwargs)
                )
        except BrokerUnavailable:
            raise
        except Exception as exc:
            log.warning("publish failed", error=f"{type(exc).__name__}: {exc}")
            raise BrokerUnavailable("the message broker is unavailable; try again") from exc

    def _publish_sync(
        self,
        body: bytes,
        *,
        exchange: Exchange,
        routing_key: str,
        correlation_id: str,
        schema: str,
        declare: list[Exchange | Queue],
    ) -> None:
        producer = self._producer()
        try:
            producer.publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                correlation_id=correlation_id,
                headers={"schema": schema, "correlation_id": correlation_id},
                declare=declare,
                retry=True,
                retry_policy={
                    "max_retries": 2,
                    "interval_start": 0.1,
                    "interval_step": 0.5,
                    "interval_max": 1.0,
                },
            )
        except Exception:
            self._reset()
            raise

    def _producer(self) -> Producer:
        producer: Producer | None = getattr(self._local, "producer", None)
        if producer is None:
            # Three tries must fit in the publish bound, so each connect gets a third.
            connection = connect(self._settings, connect_timeout_s=self._timeout_s / 3)
            with self._lock:
                self._connections.append(connection)
            producer = Producer(connection)
            self._local.producer = producer
        return producer

    def _reset(self) -> None:
        producer: Producer | None = getattr(self._local, "producer", None)
        self._local.producer = None
        if producer is not None:
            producer.connection.collect()

    def close(self) -> None:
        """Stop the publishing threads and close their connections."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for connection in self._connections:
                connection.release()
            self._connections.clear()
