"""promptbus as a deployment: ingress and worker processes, one emulator, a real broker.

Two `serve --no-worker` ingresses and two `worker` processes share a broker (RabbitMQ or
Redis) and Redis (job store, cache, single-flight lock); one emulator process answers all
upstream calls, so its `/stats` counts every call the whole topology made.
"""

import asyncio
import json
import os
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from tests.e2e.brokers import BROKER_URLS, Bus, BusTap, new_id
from tests.e2e.processes import Proc, ProcessSet, base_env

REDIS_URL = "redis://127.0.0.1:6379/15"
# The Celery/Kombu broker on Redis uses its own database, apart from promptbus's data.
BUS_URLS = {"rabbitmq": BROKER_URLS["rabbitmq"], "redis": "redis://127.0.0.1:6379/14"}


@dataclass
class Topology:
    bus: Bus
    procs: ProcessSet
    emulator: Proc
    ingresses: list[Proc]
    workers: list[Proc]


def _delete_prefix(prefix: str) -> None:
    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])


@pytest.fixture
def topology_env(request: pytest.FixtureRequest) -> Iterator[tuple[Bus, ProcessSet]]:
    """A fresh bus and Redis prefix, and a process set killed (by group) at the end."""
    broker = request.param
    bus = Bus(broker, BUS_URLS[broker], f".t-{uuid.uuid4().hex[:10]}")
    bus.check_reachable()
    prefix = f"pbtest-{os.urandom(5).hex()}:"
    with tempfile.TemporaryDirectory(prefix="pb-topology-") as tmp:
        workdir = Path(tmp)
        env = base_env(
            broker_url=bus.url,
            suffix=bus.suffix,
            redis_url=REDIS_URL,
            redis_prefix=prefix,
            gemini="http://127.0.0.1:1",  # replaced once the emulator runs
            data_dir=workdir / "data",
        )
        procs = ProcessSet(workdir, env)
        try:
            yield bus, procs
        finally:
            procs.close()
            bus.cleanup()
            _delete_prefix(prefix)


async def _start(
    bus: Bus, procs: ProcessSet, *, ingresses: int, workers: int, **extra: str
) -> Topology:
    emulator = procs.emulator()
    procs.env["PROMPTBUS_GEMINI_BASE_URL"] = emulator.url or ""
    procs.env.update(extra)
    started_workers = await procs.workers(workers)
    started_ingresses = await asyncio.gather(
        *(asyncio.to_thread(procs.ingress) for _ in range(ingresses))
    )
    return Topology(bus, procs, emulator, list(started_ingresses), started_workers)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200), timeout=aiohttp.ClientTimeout(total=30)
    ) as client:
        yield client


async def calls(session: aiohttp.ClientSession, emulator: Proc) -> int:
    async with session.get(f"{emulator.url}/stats") as resp:
        return int((await resp.json())["calls"])


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, data=json.dumps(body), headers=JSON) as resp:
        return resp.status, await resp.json(content_type=None)


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as resp:
        return resp.status, await resp.json(content_type=None)


JSON = {"Content-Type": "application/json"}
BROKERS = pytest.mark.parametrize("topology_env", ["rabbitmq", "redis"], indirect=True)
RABBITMQ = pytest.mark.parametrize("topology_env", ["rabbitmq"], indirect=True)


@BROKERS
async def test_two_ingresses_and_two_workers_share_calls_jobs_and_completions(
    topology_env: tuple[Bus, ProcessSet], session: aiohttp.ClientSession
) -> None:
    bus, procs = topology_env
    topo = await _start(bus, procs, ingresses=2, workers=2)
    a, b = topo.ingresses

    # (a) 100 identical concurrent requests over both ingresses make one upstream call
    before = await calls(session, topo.emulator)
    body = {"model": "flash", "prompt": f"{new_id('once')} [[emulator:delay=500]]"}
    replies = await asyncio.gather(
        *(post(session, f"{gw.url}/v1/generate", body) for gw in (a, b) * 50)
    )
    assert [status for status, _ in replies] == [200] * 100, replies[:3]
    assert len({reply["text"] for _, reply in replies}) == 1
    assert await calls(session, topo.emulator) - before == 1

    # (b) a job submitted to A is read and long-polled on B
    status, accepted = await post(
        session,
        f"{a.url}/v1/jobs",
        {"model": "flash", "prompt": f"{new_id('across')} [[emulator:delay=300]]"},
    )
    assert status == 202, accepted
    status, read = await get(session, f"{b.url}/v1/jobs/{accepted['id']}")
    assert status == 200, read
    assert read["id"] == accepted["id"]
    status, waited = await get(session, f"{b.url}/v1/jobs/{accepted['id']}?wait=10")
    assert status == 200, waited
    assert waited["state"] == "succeeded", waited

    # (c) 300 unique jobs across both ingresses complete exactly once each
    async with BusTap.completions(bus) as tap:
        before = await calls(session, topo.emulator)
        limit = asyncio.Semaphore(50)

        async def submit(i: int) -> str:
            async with limit:
                gw = (a, b)[i % 2]
                status, reply = await post(
                    session, f"{gw.url}/v1/jobs", {"model": "flash", "prompt": new_id(f"u{i}")}
                )
                assert status == 202, reply
                return str(reply["id"])

        ids = set(await asyncio.gather(*(submit(i) for i in range(300))))
        assert len(ids) == 300
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if ids <= {d.job_id for d in tap.deliveries}:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # room for any duplicate completion to arrive
        counts = Counter(d.job_id for d in tap.deliveries if d.job_id in ids)
        missing = ids - set(counts)
        assert not missing, f"{len(missing)} jobs never completed, e.g. {sorted(missing)[:3]}"
        twice = {job: n for job, n in counts.items() if n != 1}
        assert not twice, f"completed more than once: {twice}"
        states = Counter(d.state for d in tap.deliveries if d.job_id in ids)
        assert states == {"succeeded": 300}, states
        assert await calls(session, topo.emulator) - before == 300


@RABBITMQ
async def test_a_job_survives_sigkill_of_the_worker_running_it(
    topology_env: tuple[Bus, ProcessSet], session: aiohttp.ClientSession
) -> None:
    bus, procs = topology_env
    topo = await _start(bus, procs, ingresses=1, workers=2)
    (ingress,) = topo.ingresses

    async with BusTap.completions(bus) as tap:
        status, accepted = await post(
            session,
            f"{ingress.url}/v1/jobs",
            {"model": "flash", "prompt": f"{new_id('killed')} [[emulator:delay=2000]]"},
        )
        assert status == 202, accepted
        job_id = accepted["id"]

        # When the emulator has the call (a worker is mid-generation), SIGKILL both workers
        deadline = time.monotonic() + 10
        while await calls(session, topo.emulator) < 1:
            assert time.monotonic() < deadline, "the emulator never got the call"
            await asyncio.sleep(0.02)
        for worker in topo.workers:
            worker.kill(signal.SIGKILL)
        assert all(w.popen.returncode == -signal.SIGKILL for w in topo.workers)
        killed_at = time.monotonic()
        assert not tap.for_job(job_id), "completed before the kill: the test proves nothing"

        # and start a fresh one
        await procs.workers(1)

        # Then the job completes, exactly once
        done = await tap.wait_for(job_id=job_id, timeout_s=20)
        assert done.state == "succeeded", done.body
        await asyncio.sleep(2)
        assert len(tap.for_job(job_id)) == 1, tap.for_job(job_id)
        status, job = await get(session, f"{ingress.url}/v1/jobs/{job_id}")
        assert status == 200
        assert job["state"] == "succeeded", job
        assert time.monotonic() - killed_at < 20
        # the killed attempt's call, and the one that finished the job
        assert await calls(session, topo.emulator) == 2


class Proxy:
    """A TCP proxy of the test's own in front of the broker, which it can cut and reopen."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop listening and drop every connection."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


@RABBITMQ
async def test_a_cut_broker_connection_at_submit_is_a_503_then_submits_work_again(
    topology_env: tuple[Bus, ProcessSet], session: aiohttp.ClientSession
) -> None:
    bus, procs = topology_env
    proxy = Proxy(("127.0.0.1", 5672))
    await proxy.open()
    try:
        topo = await _start(bus, procs, ingresses=0, workers=1)
        proxied_url = f"amqp://guest:guest@127.0.0.1:{proxy.port}//"
        ingress = await asyncio.to_thread(
            procs.ingress,
            {"PROMPTBUS_BROKER_URL": proxied_url, "PROMPTBUS_PUBLISH_TIMEOUT_S": "1"},
        )
        url = f"{ingress.url}/v1/jobs"
        status, accepted = await post(session, url, {"model": "flash", "prompt": new_id("ok")})
        assert status == 202, accepted

        # When the proxy stops listening and cuts its connections
        await proxy.cut()
        started = time.monotonic()
        status, refused = await post(session, url, {"model": "flash", "prompt": new_id("cut")})

        # Then a submit answers 503 broker_unavailable within a few seconds
        assert time.monotonic() - started < 5
        assert status == 503, refused
        assert "broker_unavailable" in json.dumps(refused), refused

        # And once the proxy is back, submits work again and the job completes
        await proxy.open()
        deadline = time.monotonic() + 15
        while True:
            status, again = await post(session, url, {"model": "flash", "prompt": new_id("back")})
            if status == 202 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        assert status == 202, again
        status, done = await get(session, f"{ingress.url}/v1/jobs/{again['id']}?wait=15")
        assert status == 200
        assert done["state"] == "succeeded", done
        assert topo.workers[0].alive()
    finally:
        with suppress(AssertionError):
            await proxy.cut()
