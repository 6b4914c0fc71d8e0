"""Real Redis for tests: the shared server's test database, and private servers to kill."""

import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from pipeline.redis_client import redis_from_url

SHARED_URL = "redis://127.0.0.1:6379/15"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
async def shared() -> AsyncIterator[tuple[Redis, str]]:
    """A client of the shared Redis (db 15) and a key prefix of this test's own."""
    client = redis_from_url(SHARED_URL, timeout_s=2)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        pytest.fail(f"Redis at {SHARED_URL} is required (see /work/shared/SERVICES.md): {exc!r}")
    prefix = f"pbtest:{uuid.uuid4().hex[:12]}:"
    yield client, prefix
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    assert [key async for key in client.scan_iter(match=prefix + "*")] == []
    await client.aclose()


class LogRecorder:
    """Stands in for the module's structlog logger and keeps the events."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def warning(self, event: str, **_: Any) -> None:
        self.events.append(event)

    def info(self, event: str, **_: Any) -> None:
        self.events.append(event)
