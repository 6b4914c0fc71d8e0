"""promptbus as separate OS processes: spawn, wait until ready, kill by process group.

Every process is started in its own session (process group) and logs to a file of the
test's own; `ProcessSet.close()` kills each group it started, by pid, even after a failure.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.settings import TEST_WEBHOOK_SECRET
from tests.support.unique import free_port

ROOT = Path(__file__).resolve().parents[2]
# The console script of the venv running the tests, so processes run this checkout.
PROMPTBUS = str(Path(sys.executable).parent / "promptbus")


@dataclass
class Proc:
    """One promptbus process of the test's own."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    url: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for_line(self, marker: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if marker in self.log():
                return
            if not self.alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no {marker!r} in time; log tail:\n{self.log()[-3000:]}")

    def wait_http(self, path: str, timeout_s: float) -> None:
        assert self.url is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                break
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise AssertionError(
            f"{self.name}: {path} not 200 in time; log tail:\n{self.log()[-3000:]}"
        )

    def send(self, sig: int) -> None:
        """Signal this process alone (not its group: prefork children are left to it)."""
        with suppress(ProcessLookupError):
            os.kill(self.popen.pid, sig)

    def exited_within(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the process to end by itself."""
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def children(self) -> list[int]:
        """The pids of this process's children (Celery's prefork pool), from /proc."""
        pids: list[int] = []
        for task in Path(f"/proc/{self.pid}/task").glob("*"):
            with suppress(OSError):
                pids.extend(int(p) for p in (task / "children").read_text().split())
        return pids

    def connected_to(self, port: int) -> bool:
        """Whether this process holds an established TCP connection to 127.0.0.1:`port`."""
        return bool(_socket_inodes(self.pid) & _established_to(port))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal this process's group (it is the group leader), then reap it."""
        if self.popen.returncode is None:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)


@dataclass
class ProcessSet:
    """The processes of one topology and the environment they share."""

    workdir: Path
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], extra: dict[str, str] | None = None) -> Proc:
        """Start `argv` in its own session, logging to a file of this set's own."""
        env = {**self.env, **(extra or {})}
        log_path = self.workdir / f"{name}-{len(self.procs)}.log"
        with log_path.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        return proc

    def emulator(self, latency_ms: float = 0) -> Proc:
        port = free_port()
        proc = self.spawn(
            "emulator",
            [PROMPTBUS, "emulator", "--port", str(port), "--latency-ms", str(latency_ms)],
        )
        proc.url = f"http://127.0.0.1:{port}"
        proc.wait_http("/stats", 30)
        return proc

    def ingress(self, extra: dict[str, str] | None = None, *, wait: bool = True) -> Proc:
        port = free_port()
        proc = self.spawn(
            "ingress",
            [PROMPTBUS, "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)],
            extra,
        )
        proc.url = f"http://127.0.0.1:{port}"
        if wait:
            proc.wait_http("/healthz", 30)
        return proc

    def worker(self, extra: dict[str, str] | None = None, *, wait: bool = True) -> Proc:
        proc = self.spawn("worker", [PROMPTBUS, "worker"], extra)
        if wait:
            proc.wait_for_line("promptbus worker consuming", 30)
        return proc

    async def workers(self, count: int, extra: dict[str, str] | None = None) -> list[Proc]:
        """Start `count` workers at once and wait until all consume."""
        started = [self.worker(extra, wait=False) for _ in range(count)]
        await asyncio.gather(
            *(asyncio.to_thread(p.wait_for_line, "promptbus worker consuming", 30) for p in started)
        )
        return started

    def close(self) -> None:
        """Kill every process this set started (SIGTERM first, then SIGKILL)."""
        for proc in self.procs:
            if proc.popen.returncode is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.popen.wait(timeout=8)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait(timeout=5)


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        with suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def _established_to(port: int) -> set[str]:
    """Inodes of the machine's established IPv4 TCP sockets whose remote port is `port`."""
    inodes: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        if state == "01" and int(remote.split(":")[1], 16) == port:
            inodes.add(inode)
    return inodes


def base_env(
    *, broker_url: str, suffix: str, redis_url: str, redis_prefix: str, gemini: str, data_dir: Path
) -> dict[str, str]:
    """The inherited environment without PROMPTBUS_* or a provider key, plus these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTBUS_")}
    env.pop("GOOGLE_API_KEY", None)
    env.pop("OPENAI_API_KEY", None)
    env.update(
        PROMPTBUS_HOST="127.0.0.1",
        PROMPTBUS_BROKER_URL=broker_url,
        PROMPTBUS_BUS_SUFFIX=suffix,
        PROMPTBUS_REDIS_URL=redis_url,
        PROMPTBUS_REDIS_PREFIX=redis_prefix,
        PROMPTBUS_GEMINI_BASE_URL=gemini,
        PROMPTBUS_LOG_FORMAT="json",
        PROMPTBUS_LOG_LEVEL="info",
        PROMPTBUS_WEBHOOK_SECRET=TEST_WEBHOOK_SECRET,
        PROMPTBUS_DATA_DIR=str(data_dir),
    )
    return env
