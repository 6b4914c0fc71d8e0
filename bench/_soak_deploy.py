"""The soak's deployment: an emulator, ingresses and workers sharing one broker and Redis."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
import redis
from _broker import BROKER_URLS, PROMPTBUS_FAMILIES, clean_broker
from _common import (
    PROMPTBUS,
    Child,
    Children,
    Errors,
    child_env,
    start_emulator_up,
    start_promptbus,
    wait_healthy,
    wait_marker,
)
from _scale_bench import REDIS_URL, WEBHOOK_SECRET, WORKER_READY, clean_redis
from kombu.connection import Connection

# Redis as the broker gets a database of its own, apart from promptbus's data in 14.
SOAK_BROKER_URLS: Final = {
    "rabbitmq": BROKER_URLS["rabbitmq"],
    "redis": "redis://127.0.0.1:6379/13",
}
LOG_MARKERS: Final = (" raised unexpected", "Traceback")
KILL_WAIT_S: Final = 10.0


# How long a job may stand still before a worker's sweeper re-drives it, in the soak.
JOB_STALL_S: Final = 30


@dataclass
class Deployment:
    """One phase's processes under a fresh bus suffix and Redis prefix."""

    children: Children
    session: aiohttp.ClientSession
    work_dir: Path
    broker: str
    suffix: str
    prefix: str
    latency_ms: float
    visibility_timeout_s: int
    emulator_url: str = ""
    ingress_urls: list[str] = field(default_factory=list)
    workers: list[Child] = field(default_factory=list)
    started: list[Child] = field(default_factory=list)

    @property
    def broker_url(self) -> str:
        """The broker every process of this phase uses."""
        return SOAK_BROKER_URLS[self.broker]

    def settings(self) -> dict[str, str]:
        """The environment every promptbus process of this phase shares."""
        data_dir = self.work_dir / "data"
        data_dir.mkdir(exist_ok=True)
        return {
            "PROMPTBUS_BROKER_URL": self.broker_url,
            "PROMPTBUS_BUS_SUFFIX": self.suffix,
            "PROMPTBUS_REDIS_URL": REDIS_URL,
            "PROMPTBUS_REDIS_PREFIX": self.prefix,
            "PROMPTBUS_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PROMPTBUS_DATA_DIR": str(data_dir),
            "PROMPTBUS_REDIS_VISIBILITY_TIMEOUT_S": str(self.visibility_timeout_s),
            # Well inside the soak's wait for a completion: a job that a crash stranded is
            # re-driven by a sweeper before the soak would count it lost.
            "PROMPTBUS_JOB_STALL_S": str(JOB_STALL_S),
        }

    async def start(self, ingresses: int, workers: int) -> None:
        """The emulator, then the workers (until they consume), then the ingresses."""
        emulator, self.emulator_url = await start_emulator_up(
            self.children, self.session, self.latency_ms
        )
        self.started.append(emulator)
        fresh = [self.start_worker() for _ in range(workers)]
        await asyncio.gather(*(wait_marker(w, WORKER_READY) for w in fresh))
        print(f"  workers: pid {', '.join(str(w.process.pid) for w in fresh)}")
        for name in "ABCDEFGH"[:ingresses]:
            child, url = start_promptbus(
                self.children, self.emulator_url, "--no-worker", **self.settings()
            )
            self.started.append(child)
            await wait_healthy(self.session, child, f"{url}/healthz")
            self.ingress_urls.append(url)
            print(f"  ingress {name}: pid {child.process.pid}, {url}")

    def start_worker(self) -> Child:
        """`promptbus worker` against the emulator; it is ready once it logs WORKER_READY."""
        env = child_env(
            PROMPTBUS_GEMINI_BASE_URL=self.emulator_url,
            PROMPTBUS_OPENAI_BASE_URL=f"{self.emulator_url}/v1",
            **self.settings(),
        )
        # The ready line is logged at info level.
        env["PROMPTBUS_LOG_LEVEL"] = "info"
        child = self.children.start("worker", [*PROMPTBUS, "worker"], env)
        self.workers.append(child)
        self.started.append(child)
        return child

    async def replace_worker(self, victim: Child) -> tuple[Child, float]:
        """SIGKILL `victim` by pid, start another worker; it and how long until it consumed."""
        victim.process.kill()
        await asyncio.to_thread(victim.process.wait, KILL_WAIT_S)
        began = time.monotonic()
        replacement = self.start_worker()
        await wait_marker(replacement, WORKER_READY)
        return replacement, time.monotonic() - began

    def logs(self) -> list[Path]:
        """Every log file of this phase's processes."""
        return [child.log for child in self.started]

    async def stop(self) -> None:
        """Stop every process (last first), then delete what they left under the run's names."""
        self.children.stop(*reversed(self.started))
        await asyncio.to_thread(clean_broker, self.broker, self.suffix, self.broker_url)
        await asyncio.to_thread(clean_redis, self.prefix)


def scan_worker_logs(workers: Sequence[Child]) -> Errors:
    """Lines of the workers' logs that hold one of LOG_MARKERS, with the first few."""
    found = Errors()
    for worker in workers:
        for line in worker.output().splitlines():
            if any(marker in line for marker in LOG_MARKERS):
                found.add(f"{worker.log.name}: {line.strip()[:300]}")
    return found


def lines_about(logs: Sequence[Path], job_id: str, limit: int) -> list[str]:
    """The first `limit` log lines, over `logs`, that mention `job_id`."""
    found: list[str] = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if job_id in line:
                found.append(f"{log.name}: {line.strip()[:400]}")
                if len(found) >= limit:
                    return found
    return found


async def job_record(session: aiohttp.ClientSession, base_url: str, job_id: str) -> str:
    """`GET /v1/jobs/{id}` as one line: its status and the fields that say where it is."""
    try:
        async with session.get(f"{base_url}/v1/jobs/{job_id}") as response:
            status, text = response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"GET failed: {exc!r}"
    try:
        body = json.loads(text)
    except ValueError:
        return f"{status} {text[:300]}"
    keys = ("state", "stage", "error", "created_at", "updated_at", "attempts")
    shown = {k: body[k] for k in keys if k in body} if isinstance(body, dict) else body
    return f"{status} {json.dumps(shown)[:600]}"


def redis_keys_about(prefix: str, job_id: str) -> list[str]:
    """promptbus's keys under `prefix` that name `job_id` (its record, its claims), with TTLs."""
    found: list[str] = []
    with redis.Redis.from_url(REDIS_URL, socket_timeout=5) as client:
        # Every such key ends in ":<job id>": a bare "*<id>*" would match longer ids too.
        for key in client.scan_iter(match=f"{prefix}*:{job_id}", count=1000):
            name = key.decode(errors="replace").removeprefix(prefix)
            found.append(f"{name} (ttl {client.ttl(key)} s)")
    return sorted(found)


def broker_leftovers(url: str, suffix: str) -> dict[str, int]:
    """Messages still on the phase's queues (and, on Redis, unacknowledged) at its end."""
    names = {
        "requests": f"promptbus.requests{suffix}",
        "dlq": f"promptbus.requests.dlq{suffix}",
        **{family: f"promptbus.stage.{family}{suffix}" for family in PROMPTBUS_FAMILIES},
    }
    if url.startswith("redis"):
        return _redis_leftovers(url, names, f"unacked{suffix}")
    depths: dict[str, int] = {}
    with Connection(url, connect_timeout=5) as connection:
        for label, name in names.items():
            # A queue nobody declared raises and closes its channel: it is left out.
            with suppress(Exception):
                depths[label] = connection.channel().queue_declare(name, passive=True)[1]
    return depths


def _redis_leftovers(url: str, names: dict[str, str], unacked: str) -> dict[str, int]:
    # Kombu keeps a Redis queue as one list per priority step, and an empty list does not
    # exist, so a passive declare would call an empty queue missing: count the lists.
    with redis.Redis.from_url(url, socket_timeout=5) as client:
        depths = {
            label: sum(int(client.llen(key)) for key in (name, *_priority_lists(name)))
            for label, name in names.items()
        }
        depths["unacked"] = int(client.hlen(unacked))
    return depths


def _priority_lists(queue: str) -> list[str]:
    # Kombu's default priority steps and separator for the Redis transport.
    return [f"{queue}\x06\x16{step}" for step in (3, 6, 9)]


def new_names() -> tuple[str, str]:
    """A fresh bus suffix and Redis key prefix."""
    tag = os.urandom(5).hex()
    return f".soak-{tag}", f"pbsoak-{tag}:"
