"""`promptbus serve --processes N` for the tests: start it, read its log, pin connections.

The supervisor is started like every other test process (its own session, a log file of the
test's own) and its children share one port, so which child answers is the kernel's choice:
a `Pinned` connection learns its child from `/healthz` and keeps talking to that child.
"""

import http.client
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import redis

from tests.support.processes import PROMPTBUS, Proc, ProcessSet

REDIS_URL = "redis://127.0.0.1:6379/15"
ALL_LISTENING = "processes listening on"


def supervised_env(workdir: Path, **settings: str) -> dict[str, str]:
    """The inherited environment without PROMPTBUS_* or provider keys, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTBUS_")}
    env.pop("GOOGLE_API_KEY", None)
    env.pop("OPENAI_API_KEY", None)
    env.update(
        PROMPTBUS_HOST="127.0.0.1",
        PROMPTBUS_LOG_FORMAT="json",
        PROMPTBUS_LOG_LEVEL="info",
        PROMPTBUS_DATA_DIR=str(workdir / "data"),
        **settings,
    )
    return env


@contextmanager
def process_set(workdir: Path, **settings: str) -> Iterator[ProcessSet]:
    """A process set of the test's own; everything it started is stopped at the end."""
    procs = ProcessSet(workdir, supervised_env(workdir, **settings))
    try:
        yield procs
    finally:
        procs.close()


@contextmanager
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own in the test database, deleted afterwards."""
    prefix = f"pbtest-{os.urandom(5).hex()}:"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def start_serve(procs: ProcessSet, processes: str, *args: str, port: int = 0) -> Proc:
    """`promptbus serve --processes N` on `port`; returns once every child listens."""
    argv = [PROMPTBUS, "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = procs.spawn("serve", [*argv, "--processes", processes, *args])
    proc.wait_for_line(ALL_LISTENING, 90)
    proc.url = str(log_lines(proc)[0]["listen"])
    return proc


def log_lines(proc: Proc) -> list[dict[str, Any]]:
    """Every JSON log line the process (and its children) wrote so far."""
    lines = []
    for line in proc.log().splitlines():
        if line.startswith("{"):
            with suppress(ValueError):
                lines.append(json.loads(line))
    return lines


def events(proc: Proc, containing: str) -> list[dict[str, Any]]:
    """The log lines whose event contains `containing`."""
    return [line for line in log_lines(proc) if containing in str(line.get("event", ""))]


def gone(pid: int) -> bool:
    """Whether `pid` has ended: no such process, or a zombie its new parent has not reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    """Poll `condition()` until it holds; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:g} s"
        time.sleep(0.05)


class Pinned:
    """One keep-alive connection to the shared port, and the child process that holds it."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self._conn = http.client.HTTPConnection(host, int(port), timeout=30)
        status, body = self.call("GET", "/healthz")
        assert status == 200, body
        self.pid = int(body["pid"])

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request on this connection: its status and JSON body."""
        status, payload, _ = self.call_with_headers(method, path, body)
        return status, payload

    def call_with_headers(
        self, method: str, path: str, body: Any = None
    ) -> tuple[int, Any, http.client.HTTPMessage]:
        """One request on this connection: its status, JSON body and headers."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        self._conn.request(method, path, body=data, headers=headers)
        response = self._conn.getresponse()
        return response.status, json.loads(response.read() or b"null"), response.headers

    def text(self, path: str) -> str:
        """GET `path` on this connection; its body as text (it must be a 200)."""
        self._conn.request("GET", path)
        response = self._conn.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        return body

    def same_child(self) -> bool:
        """Whether this connection still reaches the child it started with."""
        return int(self.call("GET", "/healthz")[1]["pid"]) == self.pid

    def close(self) -> None:
        self._conn.close()


@contextmanager
def one_per_child(url: str, children: int, attempts: int = 200) -> Iterator[dict[int, Pinned]]:
    """Open connections until each of `children` children holds one; closed at the end."""
    pinned: dict[int, Pinned] = {}
    spare: list[Pinned] = []
    try:
        for _ in range(attempts):
            if len(pinned) == children:
                break
            conn = Pinned(url)
            if conn.pid in pinned:
                spare.append(conn)  # kept open, so its port is not reused for the next one
            else:
                pinned[conn.pid] = conn
        assert len(pinned) == children, f"only {len(pinned)} children answered: {list(pinned)}"
        yield pinned
    finally:
        for conn in [*pinned.values(), *spare]:
            conn.close()
