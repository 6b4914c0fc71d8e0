"""The pipeline bench's side of the brokers: names under a run's suffix, clean-up, completions."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Final

import redis
from _bare_celery import STAGE_FAMILIES, bare_completions, bare_queue_name
from _common import BenchError, Errors
from kombu.connection import Connection
from kombu.entity import Exchange, Queue, binding
from kombu.message import Message
from kombu.messaging import Consumer

BROKER_URLS: Final = {
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
    "redis": "redis://127.0.0.1:6379/14",
    "memory": "memory://",
}
# memory:// lives inside one process: only these can carry a bare baseline in another process.
SHARED_BROKERS: Final = ("rabbitmq", "redis")
# The routing keys of a job's final completion event. Not `completion.*`: that brings a
# streaming job's `completion.delta` events too, which are not completions.
FINAL_KEYS: Final = ("completion.succeeded", "completion.failed")
# promptbus's stage queue families, webhook deliveries and batch lanes included, for clean-up.
PROMPTBUS_FAMILIES: Final = (*STAGE_FAMILIES, "webhook", "batch")


# --- names on the broker -------------------------------------------------------------------


def promptbus_completions(suffix: str) -> Exchange:
    """promptbus's completions exchange under `suffix`."""
    return Exchange(f"promptbus.completions{suffix}", type="topic", durable=True)


def listener_queue_name(role: str, suffix: str) -> str:
    """The bench's own queue of completion events for one side."""
    return f"bench.listener.{role}{suffix}"


def declared_names(suffix: str) -> tuple[list[str], list[str]]:
    """Every queue and exchange a run under `suffix` may declare: (queues, exchanges)."""
    stage_names = [f"promptbus.stage.{family}{suffix}" for family in PROMPTBUS_FAMILIES]
    bare_names = [bare_queue_name(family, suffix) for family in STAGE_FAMILIES]
    queues = [
        f"promptbus.requests{suffix}",
        f"promptbus.requests.dlq{suffix}",
        *stage_names,
        *bare_names,
        listener_queue_name("bare", suffix),
        listener_queue_name("promptbus", suffix),
    ]
    exchanges = [
        f"promptbus.requests{suffix}",
        f"promptbus.requests.dlx{suffix}",
        promptbus_completions(suffix).name,
        bare_completions(suffix).name,
        # Each Celery stage queue has an exchange of the same name.
        *stage_names,
        *bare_names,
    ]
    return queues, exchanges


def rabbitmq_names(command: str, suffix: str) -> list[str]:
    """Queue or exchange names ending in `suffix` on vhost `/`, by rabbitmqctl; [] without it."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        return []
    try:
        listing = subprocess.run(
            [rabbitmqctl, "-q", "--no-table-headers", command, "-p", "/", "name"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [name for name in listing.stdout.split() if name.endswith(suffix)]


def clean_broker(broker: str, suffix: str, url: str | None = None) -> None:
    """Delete what a run under `suffix` declared: named queues and exchanges, or Redis keys."""
    url = url or BROKER_URLS[broker]
    if broker == "redis":
        with redis.Redis.from_url(url, socket_timeout=5) as client:
            keys = list(client.scan_iter(match=f"*{suffix}*", count=500))
            if keys:
                client.delete(*keys)
        return
    if broker != "rabbitmq":
        return
    queues, exchanges = declared_names(suffix)
    # Names promptbus may have added since this list was written: ask the broker, if we may.
    queues += [n for n in rabbitmq_names("list_queues", suffix) if n not in queues]
    exchanges += [n for n in rabbitmq_names("list_exchanges", suffix) if n not in exchanges]
    with Connection(url, connect_timeout=5) as connection:
        channel = connection.channel()
        # RabbitMQ deletes what does not exist without a word.
        for name in queues:
            channel.queue_delete(name)
        for name in exchanges:
            channel.exchange_delete(name)


def clean_all(brokers: Sequence[str], suffixes: Sequence[str]) -> None:
    """Delete what every run suffix declared on each shared broker, reporting failures."""
    for suffix in suffixes:
        for broker in brokers:
            if broker in SHARED_BROKERS:
                try:
                    clean_broker(broker, suffix)
                except Exception as exc:
                    print(f"cleaning {broker} {suffix} failed: {exc!r}", file=sys.stderr)


# --- completion events ---------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """One completion event the listener received, and when."""

    at: float
    state: str | None
    cache_hit: bool
    error_type: str | None = None


class Completions:
    """Completion events by job id, and the waiters for those not yet in; loop thread only."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[Arrival]] = {}
        self.unreadable = 0
        self._waiters: dict[str, asyncio.Future[float]] = {}

    def arrived(self, job_id: str | None, arrival: Arrival) -> None:
        """Record one event and wake its waiter."""
        if job_id is None:
            self.unreadable += 1
            return
        self.arrivals.setdefault(job_id, []).append(arrival)
        waiter = self._waiters.pop(job_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(arrival.at)

    async def wait(self, job_id: str, timeout_s: float) -> float | None:
        """When the job's first completion event arrived; None if none within `timeout_s`."""
        if job_id in self.arrivals:
            return self.arrivals[job_id][0].at
        waiter = self._waiters[job_id] = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            return None
        finally:
            self._waiters.pop(job_id, None)


class Listener:
    """A queue of the bench's own, bound to a completions exchange before anything is sent."""

    def __init__(self, url: str, exchange: Exchange, queue_name: str) -> None:
        self._url = url
        self._queue = Queue(
            queue_name,
            exchange=exchange,
            bindings=[binding(exchange, routing_key=key) for key in FINAL_KEYS],
            durable=False,
        )
        self.completions = Completions()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bench-listener", daemon=True)

    async def __aenter__(self) -> Listener:
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        bound = await asyncio.to_thread(self._ready.wait, 15)
        if not bound or self._failure is not None:
            raise BenchError(f"listener on {self._queue.name} not bound: {self._failure!r}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop.set()
        await asyncio.to_thread(self._thread.join, 15)

    @property
    def failure(self) -> BaseException | None:
        """What stopped the listener early, if anything did: events after it were not seen."""
        return self._failure

    def _run(self) -> None:
        # Short Redis BRPOPs, so that the thread stops quickly; arrivals wake it at once anyway.
        options = {"polling_interval": 0.1} if self._url.startswith("redis") else {}
        try:
            with Connection(self._url, connect_timeout=5, transport_options=options) as connection:
                consumer = Consumer(
                    connection.channel(), [self._queue], on_message=self._on_message, no_ack=True
                )
                with consumer:
                    self._ready.set()
                    while not self._stop.is_set():
                        with suppress(TimeoutError):
                            connection.drain_events(timeout=0.1)
        except BaseException as exc:
            self._failure = exc
            self._ready.set()

    def _on_message(self, message: Message) -> None:
        at = time.perf_counter()
        job_id: str | None = None
        state: str | None = None
        hit = False
        error_type: str | None = None
        with suppress(ValueError, TypeError, AttributeError):
            body = json.loads(message.body)
            job_id, state = body.get("job_id"), body.get("state")
            hit = bool((body.get("cache") or {}).get("hit"))
            error_type = (body.get("error") or {}).get("type")
        arrival = Arrival(at=at, state=state, cache_hit=hit, error_type=error_type)
        self._loop.call_soon_threadsafe(self.completions.arrived, job_id, arrival)


def audit(completions: Completions, job_ids: Sequence[str], errors: Errors) -> None:
    """Count every job without exactly one succeeded, uncached completion event as an error."""
    missing = duplicates = not_succeeded = hits = 0
    for job_id in job_ids:
        arrivals = completions.arrivals.get(job_id, [])
        missing += not arrivals
        duplicates += max(0, len(arrivals) - 1)
        not_succeeded += sum(a.state != "succeeded" for a in arrivals)
        hits += sum(a.cache_hit for a in arrivals)
    errors.add(f"{missing} jobs got no completion event", missing)
    errors.add(f"{duplicates} duplicate completion events", duplicates)
    errors.add(f"{not_succeeded} completion events not succeeded", not_succeeded)
    errors.add(f"{hits} completions answered from the cache", hits)
    errors.add(f"{completions.unreadable} unreadable completion events", completions.unreadable)
