"""Bus taps: a test's own queue on an exchange, and the messages it received."""

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import Any

from kombu import Consumer, Message, Queue

from pipeline.bus.topology import DELTA_KEY, FINAL_KEYS, REASON_HEADER
from tests.support.bus import Bus


@dataclass(frozen=True)
class Delivery:
    """One message a tap received."""

    routing_key: str
    raw: bytes
    body: Any  # decoded JSON, or the raw bytes when it is not JSON
    headers: dict[str, Any]

    @property
    def job_id(self) -> str | None:
        return self.body.get("job_id") if isinstance(self.body, dict) else None

    @property
    def state(self) -> str | None:
        return self.body.get("state") if isinstance(self.body, dict) else None

    @property
    def reason(self) -> str | None:
        """Why promptbus dead-lettered it."""
        return self.headers.get(REASON_HEADER)


class BusTap:
    """A queue of the test's own, bound to an exchange before anything is sent to it.

    Kombu is synchronous, so a thread consumes and hands each message to the event loop;
    `wait_for` then waits with a deadline.
    """

    def __init__(self, bus: Bus, queue: Queue) -> None:
        self._bus = bus
        self._queue = queue
        self.deliveries: list[Delivery] = []
        self._changed = asyncio.Event()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-bus-tap", daemon=True)

    @classmethod
    def completions(cls, bus: Bus, *binding_keys: str) -> "BusTap":
        """A tap on final completion events (or on `binding_keys`), as a consumer binds one."""
        keys = binding_keys or FINAL_KEYS
        return cls(bus, bus.topology.completions_queue(bus.queue_name("completions"), keys))

    @classmethod
    def deltas(cls, bus: Bus) -> "BusTap":
        """A tap on streaming jobs' deltas alone."""
        return cls.completions(bus, DELTA_KEY)

    @classmethod
    def requests(cls, bus: Bus) -> "BusTap":
        """A copy of every request event: a second queue on the direct requests exchange."""
        queue = Queue(
            bus.queue_name("requests"),
            exchange=bus.topology.requests_exchange,
            routing_key="request",
            durable=False,
        )
        return cls(bus, queue)

    @classmethod
    def dead_letters(cls, bus: Bus) -> "BusTap":
        """The dead-letter queue itself."""
        return cls(bus, bus.topology.dead_letter_queue)

    async def __aenter__(self) -> "BusTap":
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        bound = await asyncio.to_thread(self._ready.wait, 15)
        if not bound or self._failure is not None:
            raise AssertionError(f"tap on {self._queue.name} not bound: {self._failure!r}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join, 15)

    def _run(self) -> None:
        try:
            with self._bus.connection() as connection:
                # Raw bodies: a dead-lettered event need not be JSON, whatever it claims.
                with Consumer(connection.channel(), [self._queue], on_message=self._on_message):
                    self._ready.set()
                    while not self._stop.is_set():
                        try:
                            connection.drain_events(timeout=0.1)
                        except TimeoutError:
                            continue
                if self._queue.name != self._bus.topology.dead_letter_queue.name:
                    self._queue.bind(connection.channel()).delete()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            self._loop.call_soon_threadsafe(self._changed.set)

    def _on_message(self, message: Message) -> None:
        raw = message.body if isinstance(message.body, bytes) else message.body.encode()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        delivery = Delivery(
            routing_key=str(message.delivery_info.get("routing_key", "")),
            raw=raw,
            body=body,
            headers=dict(message.headers or {}),
        )
        message.ack()
        self._loop.call_soon_threadsafe(self._record, delivery)

    def _record(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        self._changed.set()

    def for_job(self, job_id: str) -> list[Delivery]:
        """What arrived so far for one job."""
        return [d for d in self.deliveries if d.job_id == job_id]

    def tagged(self, test_id: str) -> list[Delivery]:
        """What arrived so far carrying a test's `x-test-id` header."""
        return [d for d in self.deliveries if d.headers.get("x-test-id") == test_id]

    async def wait_for(
        self,
        *,
        job_id: str | None = None,
        test_id: str | None = None,
        state: str | None = None,
        index: int | None = None,
        timeout_s: float = 20.0,
    ) -> Delivery:
        """The first delivery matching all the given filters (`index`: a delta's), waiting."""

        def matches(d: Delivery) -> bool:
            return (
                (job_id is None or d.job_id == job_id)
                and (test_id is None or d.headers.get("x-test-id") == test_id)
                and (state is None or d.state == state)
                and (index is None or (isinstance(d.body, dict) and d.body.get("index") == index))
            )

        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    if self._failure is not None:
                        raise AssertionError(f"tap on {self._queue.name} failed: {self._failure!r}")
                    found = next((d for d in self.deliveries if matches(d)), None)
                    if found is not None:
                        return found
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"nothing for job_id={job_id} test_id={test_id} state={state} index={index} on "
                f"{self._queue.name} within {timeout_s:g}s; got {self.deliveries}"
            ) from None
