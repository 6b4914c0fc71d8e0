"""The soak's load: jobs over HTTP and as bus events, a bounded window in flight, the tally."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from _broker import Completions
from _common import Errors, post_job_prompt
from kombu.connection import Connection
from kombu.entity import Exchange
from kombu.messaging import Producer

REQUEST_SCHEMA: Final = "promptbus.request/v1"
PUBLISH_TIMEOUT_S: Final = 10.0
RETRY_POLICY: Final = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5}
SETTLE_POLL_S: Final = 0.25


class BusPublisher:
    """Request events published with plain Kombu, as an upstream system does, from one thread."""

    def __init__(self, url: str, suffix: str) -> None:
        self._url = url
        self._exchange = Exchange(f"promptbus.requests{suffix}", type="direct", durable=True)
        # Kombu connections are not thread-safe: one thread owns this one.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="bench-publisher")
        self._connection: Connection | None = None
        self._producer: Producer | None = None

    def _publish(self, job_id: str, prompt: str) -> None:
        if self._producer is None:
            # Confirms on RabbitMQ: a publish returns once the broker has the message.
            options = {"confirm_publish": True} if self._url.startswith("amqp") else {}
            self._connection = Connection(self._url, connect_timeout=5, transport_options=options)
            self._producer = Producer(self._connection)
        event = {
            "schema": REQUEST_SCHEMA,
            "job_id": job_id,
            "request": {"model": "flash", "prompt": prompt},
        }
        self._producer.publish(
            json.dumps(event),
            exchange=self._exchange,
            routing_key="request",
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            retry=True,
            retry_policy=RETRY_POLICY,
            timeout=PUBLISH_TIMEOUT_S,
        )

    async def publish(self, job_id: str, prompt: str) -> None:
        """Publish one request event; raises if the broker did not take it."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._publish, job_id, prompt)

    def close(self) -> None:
        """Close the connection on its own thread, then the thread."""
        if self._connection is not None:
            self._thread.submit(self._connection.release).result(timeout=15)
        self._thread.shutdown(wait=True)


@dataclass
class Submissions:
    """What one phase submitted, what was accepted, by which path, and what was refused."""

    submitted: int = 0
    accepted: dict[str, str] = field(default_factory=dict)
    refused: Errors = field(default_factory=Errors)
    first_at: float = 0.0
    last_at: float = 0.0

    def paths(self) -> Counter[str]:
        """Accepted jobs by path."""
        return Counter(self.accepted.values())


@dataclass
class Jobs:
    """Submits the n-th job: every `bus_every`-th as a bus event, the rest over HTTP in turn."""

    session: aiohttp.ClientSession
    ingress_urls: Sequence[str]
    publisher: BusPublisher
    label: str
    bus_every: int
    record: Submissions = field(default_factory=Submissions)

    async def submit(self, number: int) -> str | None:
        """Submit job `number`; its id if accepted, None if refused."""
        prompt = f"soak {self.label} {number}"
        path = "bus"
        self.record.submitted += 1
        self.record.last_at = time.perf_counter()
        try:
            if self.bus_every and number % self.bus_every == self.bus_every - 1:
                job_id = f"soak-{self.label.replace(' ', '-')}-{number}"
                await self.publisher.publish(job_id, prompt)
            else:
                index = number % len(self.ingress_urls)
                path = f"ingress {'ABCDEFGH'[index]}"
                job_id = await post_job_prompt(self.session, self.ingress_urls[index], prompt)
        except Exception as exc:
            # Not only BenchError and aiohttp's: Kombu, py-amqp and redis-py raise their own.
            self.record.refused.add(f"job {number} ({path}): {type(exc).__name__}: {exc}"[:300])
            return None
        self.record.accepted[job_id] = path
        return job_id


async def drive(
    jobs: Jobs,
    count: int,
    in_flight: int,
    completions: Completions,
    wait_s: float,
    at_half: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """`count` jobs from `in_flight` slots, each awaiting its job's completion (up to `wait_s`)."""
    numbers = iter(range(count))
    chaos: list[asyncio.Task[Any]] = []

    async def slot() -> None:
        for number in numbers:
            if number == count // 2 and at_half is not None:
                chaos.append(asyncio.create_task(at_half()))
            job_id = await jobs.submit(number)
            if job_id is not None:
                await completions.wait(job_id, wait_s)

    jobs.record.first_at = time.perf_counter()
    await asyncio.gather(*(slot() for _ in range(in_flight)))
    await asyncio.gather(*chaos)


def last_arrival(completions: Completions) -> float:
    """When the latest completion event arrived; 0 if none has."""
    return max((a.at for arrivals in completions.arrivals.values() for a in arrivals), default=0.0)


async def settle(
    completions: Completions, accepted: Sequence[str], stall_s: float, cap_s: float
) -> str:
    """Wait until every accepted job completed, or `stall_s` passed with no completion; why."""
    began = time.perf_counter()
    deadline = began + cap_s
    while True:
        missing = sum(job_id not in completions.arrivals for job_id in accepted)
        if not missing:
            return "every accepted job completed"
        now = time.perf_counter()
        quiet = now - (last_arrival(completions) or began)
        if quiet >= stall_s:
            return f"{missing} jobs missing, no completion for {quiet:.0f} s"
        if now >= deadline:
            return f"{missing} jobs missing at the {cap_s:g} s cap"
        await asyncio.sleep(SETTLE_POLL_S)


@dataclass(frozen=True)
class Tally:
    """Completion events per accepted job: once, none (lost), more than once (duplicated)."""

    completed_once: int
    lost: list[str]
    duplicated: dict[str, int]
    failed: Counter[str]
    strangers: int
    unreadable: int

    @classmethod
    def of(cls, completions: Completions, accepted: Sequence[str]) -> Tally:
        """The tally of `accepted` jobs against the events received."""
        arrivals = completions.arrivals
        counts = {job_id: len(arrivals.get(job_id, [])) for job_id in accepted}
        failed: Counter[str] = Counter(
            a.error_type or "unknown"
            for job_id in accepted
            for a in arrivals.get(job_id, [])
            if a.state != "succeeded"
        )
        return cls(
            completed_once=sum(n == 1 for n in counts.values()),
            lost=[job_id for job_id, n in counts.items() if n == 0],
            duplicated={job_id: n for job_id, n in counts.items() if n > 1},
            failed=failed,
            strangers=len(set(arrivals) - set(accepted)),
            unreadable=completions.unreadable,
        )
