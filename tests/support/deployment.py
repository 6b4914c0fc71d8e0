"""promptbus as a deployment, for the topology tests: OS processes on a real broker and Redis.

`serve --no-worker` ingresses and `worker` processes share a broker (RabbitMQ or Redis) and
Redis (job store, cache, single-flight lock); one emulator process answers every upstream
call, so its `/stats` counts every call the whole deployment made. Each deployment has its
own bus suffix and Redis key prefix, and everything it started or declared is removed when
it ends, even after a failure. A `Proxy` of the test's own (tests/support/tcp_proxy.py)
stands in for the broker when a test needs to cut or silence a connection: the shared
services themselves are never stopped.
"""

import asyncio
import json
import os
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from tests.support.bus import Bus
from tests.support.bus_tap import BusTap
from tests.support.processes import Proc, ProcessSet, base_env
from tests.support.services import RABBITMQ_URL, REDIS_BUS_URL, REDIS_URL
from tests.support.tcp_proxy import Proxy

# The Celery/Kombu broker on Redis uses its own database, apart from promptbus's data.
BUS_URLS = {"rabbitmq": RABBITMQ_URL, "redis": REDIS_BUS_URL}
JSON = {"Content-Type": "application/json"}

BOTH_BROKERS = pytest.mark.parametrize("broker", ["rabbitmq", "redis"])


@dataclass
class Deployment:
    """One test's deployment: its bus, its processes, the emulator and an HTTP client."""

    broker: str
    bus: Bus
    procs: ProcessSet
    emulator: Proc
    session: aiohttp.ClientSession

    async def ingresses(self, count: int, extra: dict[str, str] | None = None) -> list[Proc]:
        """Start `count` ingress processes (`serve --no-worker`) and wait until they answer."""
        started = await asyncio.gather(
            *(asyncio.to_thread(self.procs.ingress, extra) for _ in range(count))
        )
        return list(started)

    async def workers(self, count: int, extra: dict[str, str] | None = None) -> list[Proc]:
        """Start `count` worker processes and wait until they consume."""
        return await self.procs.workers(count, extra)

    def proxied_broker_url(self, proxy: "Proxy") -> str:
        """This deployment's broker URL, through `proxy`."""
        if self.broker == "redis":
            return f"redis://127.0.0.1:{proxy.port}/14"
        return f"amqp://guest:guest@127.0.0.1:{proxy.port}//"

    async def calls(self) -> int:
        """Upstream calls the emulator has answered so far."""
        async with self.session.get(f"{self.emulator.url}/stats") as resp:
            return int((await resp.json())["calls"])

    async def wait_calls(self, at_least: int, timeout_s: float = 10.0) -> None:
        """Wait until the emulator has received at least `at_least` calls."""
        deadline = time.monotonic() + timeout_s
        while await self.calls() < at_least:
            assert time.monotonic() < deadline, f"the emulator never got {at_least} calls"
            await asyncio.sleep(0.02)

    async def post(self, url: str, body: Any) -> tuple[int, Any]:
        async with self.session.post(url, data=json.dumps(body), headers=JSON) as resp:
            return resp.status, await resp.json(content_type=None)

    async def get(self, url: str) -> tuple[int, Any]:
        async with self.session.get(url) as resp:
            return resp.status, await resp.json(content_type=None)

    async def submit(self, ingress: Proc, prompt: str, **fields: Any) -> str:
        """POST a job to `ingress` (with any other `fields`); its id (the answer must be a 202)."""
        status, reply = await self.post(
            f"{ingress.url}/v1/jobs", {"model": "flash", "prompt": prompt, **fields}
        )
        assert status == 202, reply
        return str(reply["id"])


@asynccontextmanager
async def deployment(broker: str, env: dict[str, str] | None = None) -> AsyncIterator[Deployment]:
    """A fresh bus and Redis prefix and a running emulator; every process killed at the end."""
    bus = Bus(broker, BUS_URLS[broker], f".t-{uuid.uuid4().hex[:10]}")
    bus.check_reachable()
    prefix = f"pbtest-{os.urandom(5).hex()}:"
    with tempfile.TemporaryDirectory(prefix="pb-topology-") as tmp:
        workdir = Path(tmp)
        procs = ProcessSet(
            workdir,
            base_env(
                broker_url=bus.url,
                suffix=bus.suffix,
                redis_url=REDIS_URL,
                redis_prefix=prefix,
                gemini="http://127.0.0.1:1",  # replaced once the emulator runs
                data_dir=workdir / "data",
            ),
        )
        try:
            emulator = await asyncio.to_thread(procs.emulator)
            procs.env["PROMPTBUS_GEMINI_BASE_URL"] = emulator.url or ""
            procs.env["PROMPTBUS_OPENAI_BASE_URL"] = f"{emulator.url}/v1"
            procs.env.update(env or {})
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200),
                timeout=aiohttp.ClientTimeout(total=30),
            ) as session:
                yield Deployment(broker, bus, procs, emulator, session)
        finally:
            await asyncio.to_thread(procs.close)
            bus.cleanup()
            _delete_prefix(prefix)


def _delete_prefix(prefix: str) -> None:
    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])


async def completed_once(
    tap: BusTap, ids: Iterable[str], *, timeout_s: float, grace_s: float = 1.5
) -> Counter[str | None]:
    """Wait until every job in `ids` completed; assert each exactly once; count the states.

    After the last one, waits `grace_s` more so any duplicate completion has time to arrive.
    """
    wanted = set(ids)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if wanted <= {d.job_id for d in tap.deliveries}:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(grace_s)
    counts = Counter(d.job_id for d in tap.deliveries if d.job_id in wanted)
    missing = wanted - set(counts)
    assert not missing, f"{len(missing)} jobs never completed, e.g. {sorted(missing)[:3]}"
    twice = {job: n for job, n in counts.items() if n != 1}
    assert not twice, f"completed more than once: {twice}"
    return Counter(d.state for d in tap.deliveries if d.job_id in wanted)
