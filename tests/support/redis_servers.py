"""Real Redis for tests: a prefix of its own on the shared test database, or a private server."""

import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis as sync_redis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pipeline.redis_client import redis_from_url
from tests.support.services import REDIS_URL
from tests.support.unique import free_port


class RedisRun:
    """Clients of the test database for one test, and the key prefix only it uses."""

    def __init__(self) -> None:
        self.prefix = f"promptbus-test:{os.urandom(6).hex()}:"
        self._clients: list[Redis] = []

    def client(self) -> Redis:
        """A new client (its own connection pool), closed at the end of the test."""
        client = redis_from_url(REDIS_URL, timeout_s=2.0)
        self._clients.append(client)
        return client

    async def keys(self) -> list[bytes]:
        """Every key under this test's prefix."""
        return [key async for key in self._clients[0].scan_iter(match=self.prefix + "*")]

    async def close(self) -> None:
        """Delete this test's keys (and nobody else's), then close the clients."""
        try:
            keys = await self.keys()
            if keys:
                await self._clients[0].delete(*keys)
        finally:
            await self.disconnect()

    async def disconnect(self) -> None:
        """Close the clients."""
        for client in self._clients:
            await client.aclose()


@asynccontextmanager
async def redis_run() -> AsyncIterator[RedisRun]:
    """A RedisRun; the test fails, never skips, when Redis does not answer."""
    run = RedisRun()
    try:
        await run.client().ping()
    except RedisError as exc:
        await run.disconnect()
        pytest.fail(f"Redis is not reachable at {REDIS_URL} (it should always run): {exc}")
    try:
        yield run
    finally:
        await run.close()


class PrivateRedis:
    """A redis-server of the test's own on a free port, to kill, pause and restart."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not on PATH; these tests need a real Redis 7")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server on this port and wait until it answers."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = sync_redis.Redis(port=self.port, socket_timeout=0.2, socket_connect_timeout=0.2)
        with probe:
            for _ in range(100):
                try:
                    if probe.ping():
                        return
                except sync_redis.RedisError:
                    time.sleep(0.05)
        self.kill()
        pytest.fail(f"private redis-server on port {self.port} did not answer within 5s")

    def kill(self) -> None:
        """Kill the server (it keeps nothing) and wait for it to exit."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=5)
            self.proc = None

    def pause(self) -> None:
        """Freeze the server: connections stay open but nothing answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
