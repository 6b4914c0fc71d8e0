"""Job tests on real brokers: per-run bus names, bus taps, task traces and clean-up.

Every test run gets its own `bus_suffix`, so runs sharing the machine's RabbitMQ and Redis
never see each other's queues; what a run declared is deleted when it ends (on Redis: only
keys in database 15 that contain the run's suffix).
"""

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import redis
from aiohttp import web
from celery import signals
from kombu import Connection, Consumer, Message, Queue
from multidict import CIMultiDict

from pipeline.bus.topology import REASON_HEADER, Topology
from pipeline.emulator import EmulatorConfig, start_emulator
from pipeline.ingress import create_app
from pipeline.ingress.keys import RUNTIME
from pipeline.worker.celery_app import FAMILIES, WEBHOOK_FAMILY
from tests.conftest import Emulator, Gateway, Reply, settings_for_test

BROKER_URLS = {
    "memory": "memory://",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
    "redis": "redis://127.0.0.1:6379/15",
}
BROKERS = tuple(BROKER_URLS)
# memory:// lives inside one process: only these brokers reach a separate OS process.
CROSS_PROCESS_BROKERS = ("rabbitmq", "redis")
STAGE_FAMILIES = tuple(sorted({*FAMILIES.values(), WEBHOOK_FAMILY}))


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
    def completions(cls, bus: Bus, binding: str = "completion.*") -> "BusTap":
        """A tap on completion events, as any downstream consumer would bind one."""
        return cls(bus, bus.topology.completions_queue(bus.queue_name("completions"), binding))

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
        timeout_s: float = 20.0,
    ) -> Delivery:
        """The first delivery matching all the given filters, waiting up to `timeout_s`."""

        def matches(d: Delivery) -> bool:
            return (
                (job_id is None or d.job_id == job_id)
                and (test_id is None or d.headers.get("x-test-id") == test_id)
                and (state is None or d.state == state)
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
                f"nothing for job_id={job_id} test_id={test_id} state={state} on "
                f"{self._queue.name} within {timeout_s:g}s; got {self.deliveries}"
            ) from None


class TaskTrace:
    """The ids of the Celery tasks this process's worker started and finished."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self._lock = threading.Lock()

    def _on_prerun(self, task_id: str | None = None, **_: Any) -> None:
        with self._lock:
            self.started.append(str(task_id))

    def _on_postrun(self, task_id: str | None = None, **_: Any) -> None:
        with self._lock:
            self.finished.append(str(task_id))

    def started_for(self, job_id: str) -> list[str]:
        """Task ids started for a job (they are `{job_id}.{step}`)."""
        with self._lock:
            return [t for t in self.started if t.startswith(f"{job_id}.")]

    async def wait_finished(self, task_id: str, timeout_s: float = 20.0) -> None:
        """Poll, with a deadline, until the task with `task_id` has run."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                if task_id in self.finished:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} did not finish within {timeout_s:g}s")
            await asyncio.sleep(0.01)


@contextmanager
def traced_tasks() -> Iterator[TaskTrace]:
    """Record Celery task starts and ends while the block runs."""
    trace = TaskTrace()
    signals.task_prerun.connect(trace._on_prerun, weak=False)
    signals.task_postrun.connect(trace._on_postrun, weak=False)
    try:
        yield trace
    finally:
        signals.task_prerun.disconnect(trace._on_prerun)
        signals.task_postrun.disconnect(trace._on_postrun)


@asynccontextmanager
async def serving(session: aiohttp.ClientSession, **overrides: Any) -> AsyncIterator[Gateway]:
    """A gateway on a free loopback port for the duration of the block."""
    app = create_app(settings_for_test(**overrides))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield Gateway(f"http://127.0.0.1:{port}", app[RUNTIME], session)
    finally:
        await runner.cleanup()


@dataclass
class JobEnv:
    """A gateway running jobs on one bus, its emulator, and the bus it is on."""

    bus: Bus
    gateway: Gateway
    emulator: Emulator
    session: aiohttp.ClientSession

    async def submit(self, body: Any, headers: dict[str, str] | None = None) -> Reply:
        """POST /v1/jobs."""
        return await self.gateway.post_raw("/v1/jobs", json.dumps(body), headers)

    async def get(self, path: str) -> Reply:
        return await self.gateway.get(path)

    async def delete(self, path: str) -> Reply:
        async with self.session.delete(self.gateway.url + path) as resp:
            return Reply(resp.status, await resp.json(content_type=None), CIMultiDict(resp.headers))

    async def wait_job(self, job_id: str, wait_s: float = 20.0) -> Reply:
        """GET /v1/jobs/{id}?wait=S."""
        return await self.get(f"/v1/jobs/{job_id}?wait={wait_s:g}")


@asynccontextmanager
async def job_env(broker: str, **overrides: Any) -> AsyncIterator[JobEnv]:
    """A bus on `broker`, an emulator and a gateway with its embedded worker on that bus."""
    with provisioned_bus(broker) as bus:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100), timeout=aiohttp.ClientTimeout(total=60)
        ) as session:
            running = await start_emulator(EmulatorConfig(), host="127.0.0.1", port=0)
            try:
                settings = {
                    **bus.overrides(),
                    "embedded_worker": True,
                    "gemini_base_url": running.base_url,
                    **overrides,
                }
                async with serving(session, **settings) as gateway:
                    yield JobEnv(bus, gateway, Emulator(running, session), session)
            finally:
                await running.stop()


def new_id(prefix: str) -> str:
    """A unique id for a job or a prompt of one test."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
