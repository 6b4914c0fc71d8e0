"""What the benchmarks share: child processes, ports, HTTP helpers, latency records, verdict."""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

import aiohttp

HOST: Final = "127.0.0.1"
REPO: Final = Path(__file__).resolve().parent.parent
PROMPTBUS: Final = (sys.executable, "-m", "pipeline.cli")
JSON_HEADERS: Final = {"content-type": "application/json"}
STARTUP_TIMEOUT_S: Final = 60.0
ERROR_SAMPLES: Final = 5


class BenchError(Exception):
    """The bench could not run: a server did not start, or a tool or broker failed."""


# --- child processes -----------------------------------------------------------------------


@dataclass
class Child:
    """A process the bench started, and the file its output goes to."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """Everything the process has printed so far."""
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 20) -> str:
        """The last `lines` lines the process printed."""
        return "\n".join(self.output().splitlines()[-lines:])


class Children:
    """Starts child processes, each in its own session, and stops those still running on exit."""

    def __init__(self, log_dir: Path, grace_s: float) -> None:
        self._log_dir = log_dir
        self._grace_s = grace_s
        self._started: list[Child] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        """Start `argv` in the repo, its output in a log file."""
        log = self._log_dir / f"{name}-{len(self._started)}.log"
        with log.open("wb") as out:
            # A session of its own: Ctrl-C reaches only the bench, which then stops the children.
            # The repo as working directory: bench/pipeline.py would shadow the package for -m.
            process = subprocess.Popen(
                argv,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                start_new_session=True,
            )
        child = Child(name, process, log)
        self._started.append(child)
        return child

    def stop(self, *children: Child) -> None:
        """Terminate `children` by pid, killing any that outlive the grace period."""
        running = [c for c in children if c.process.poll() is None]
        for child in running:
            child.process.terminate()
        for child in running:
            try:
                child.process.wait(timeout=self._grace_s)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop(*reversed(self._started))


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(**overrides: str) -> dict[str, str]:
    """This environment without promptbus or Google settings, plus `overrides`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PROMPTBUS_") and k != "GOOGLE_API_KEY"
    }
    env.update(PROMPTBUS_LOG_FORMAT="json", PROMPTBUS_LOG_LEVEL="warning", **overrides)
    return env


def start_emulator(children: Children, latency_ms: float) -> tuple[Child, str]:
    """`promptbus emulator` on a free port; the child and its base URL."""
    port = free_port()
    argv = ["emulator", "--host", HOST, "--port", str(port), "--latency-ms", f"{latency_ms:g}"]
    return children.start("emulator", [*PROMPTBUS, *argv], child_env()), f"http://{HOST}:{port}"


def start_promptbus(
    children: Children, emulator_url: str, *serve_args: str, **overrides: str
) -> tuple[Child, str]:
    """`promptbus serve` on a free port against the emulator; the child and its base URL."""
    port = free_port()
    env = child_env(
        PROMPTBUS_HOST=HOST,
        PROMPTBUS_PORT=str(port),
        PROMPTBUS_GEMINI_BASE_URL=emulator_url,
        PROMPTBUS_OPENAI_BASE_URL=f"{emulator_url}/v1",
        **overrides,
    )
    child = children.start("promptbus", [*PROMPTBUS, "serve", *serve_args], env)
    return child, f"http://{HOST}:{port}"


async def start_emulator_up(
    children: Children, session: aiohttp.ClientSession, latency_ms: float
) -> tuple[Child, str]:
    """`start_emulator`, then wait until it is healthy and print it; the child and its base URL."""
    emulator, emulator_url = start_emulator(children, latency_ms)
    await wait_healthy(session, emulator, f"{emulator_url}/healthz")
    print(f"emulator: pid {emulator.process.pid}, {emulator_url}, {latency_ms:g} ms latency")
    return emulator, emulator_url


async def wait_up(
    child: Child, is_up: Callable[[], Awaitable[bool]], timeout_s: float = STARTUP_TIMEOUT_S
) -> None:
    """Return once `is_up()` holds; fail if the child exits or takes longer than `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await is_up():
            return
        if (code := child.process.poll()) is not None:
            raise BenchError(f"{child.name} exited with {code} before it was up:\n{child.tail()}")
        await asyncio.sleep(0.1)
    raise BenchError(f"{child.name} was not up within {timeout_s:g}s:\n{child.tail()}")


async def wait_healthy(
    session: aiohttp.ClientSession, child: Child, url: str, timeout_s: float = STARTUP_TIMEOUT_S
) -> None:
    """Return once `url` answers 200; fail if the child exits or takes longer than `timeout_s`."""

    async def healthy() -> bool:
        with suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(url) as response:
                return response.status == 200
        return False

    await wait_up(child, healthy, timeout_s)


async def wait_marker(child: Child, marker: str) -> None:
    """Return once the child has printed `marker`; fail if it exits or takes too long."""

    async def printed() -> bool:
        return marker in child.output()

    await wait_up(child, printed)


def client_session(connections: int, timeout_s: float) -> aiohttp.ClientSession:
    """A client session of at most `connections` keep-alive connections, `timeout_s` per request."""
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


async def post_job_prompt(session: aiohttp.ClientSession, base_url: str, prompt: str) -> str:
    """POST /v1/jobs with `prompt` for the flash model; the job id of the 202."""
    body = json.dumps({"model": "flash", "prompt": prompt}).encode()
    async with session.post(f"{base_url}/v1/jobs", data=body, headers=JSON_HEADERS) as r:
        text = await r.text()
    if r.status != 202:
        raise BenchError(f"POST /v1/jobs answered {r.status}: {text[:300]}")
    job_id: str = json.loads(text)["id"]
    return job_id


async def emulator_calls(session: aiohttp.ClientSession, emulator_url: str) -> int:
    """How many generate calls the emulator has received."""
    async with session.get(f"{emulator_url}/stats") as response:
        calls: int = (await response.json())["calls"]
    return calls


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Python dies on SIGTERM without unwinding; SystemExit runs the cleanup of the children.
    raise SystemExit(128 + signum)


def run_bench(
    bench: Callable[[Children, Path], Coroutine[Any, Any, int]],
    grace_s: float = 5.0,
    work_dir: Path | None = None,
) -> int:
    """Run `bench` with its children stopped however it ends; its exit code, 130 or 1."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # A work_dir of the caller's own outlives the run, so that it can keep the logs.
    with (
        tempfile.TemporaryDirectory(prefix="promptbus-bench-") as tmp,
        Children(work_dir or Path(tmp), grace_s) as children,
    ):
        try:
            return asyncio.run(bench(children, work_dir or Path(tmp)))
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the servers", file=sys.stderr)
            return 130
        except BenchError as exc:
            print(f"\nbench failed: {exc}", file=sys.stderr)
            return 1


# --- measurements --------------------------------------------------------------------------


@dataclass
class Errors:
    """A count of failures and the first few of them."""

    count: int = 0
    samples: list[str] = field(default_factory=list)

    def add(self, message: str, count: int = 1) -> None:
        """Count `count` failures described by `message`."""
        if count <= 0:
            return
        self.count += count
        if len(self.samples) < ERROR_SAMPLES:
            self.samples.append(message)

    def show(self) -> None:
        """Print the first few failures, one line each."""
        for sample in self.samples:
            print(f"      error: {sample}")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` percentile (0-100) of already sorted values; nan if empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Load:
    """What one load run measured: how many completed, at what rate, and their latency."""

    completed: int
    rate: float
    p50_ms: float
    p99_ms: float
    errors: Errors

    @classmethod
    def of(cls, latencies: Sequence[float], elapsed_s: float, errors: Errors) -> Load:
        """The load run that took `latencies` (seconds) over `elapsed_s`."""
        ordered = sorted(latencies)
        return cls(
            completed=len(ordered),
            rate=len(ordered) / elapsed_s if elapsed_s > 0 else 0.0,
            p50_ms=percentile(ordered, 50) * 1000,
            p99_ms=percentile(ordered, 99) * 1000,
            errors=errors,
        )


# --- the verdict ---------------------------------------------------------------------------


# What the summary says in place of PASS or FAIL for a figure shown only for comparison.
REFERENCE: Final = "reference, no target"


@dataclass(frozen=True)
class Check:
    """One target: the measured value against the goal (passed None: a reference, no target)."""

    name: str
    measured: str
    goal: str
    passed: bool | None


def pass_fail(passed: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if passed else "FAIL"


def describe_machine(*libraries: tuple[str, str]) -> str:
    """Cores, CPU model and versions (`libraries` as name and version, then aiohttp)."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    versions = [*libraries, ("aiohttp", aiohttp.__version__)]
    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, "
        + ", ".join(f"{name} {version}" for name, version in versions)
    )


def report(checks: Sequence[Check]) -> int:
    """Print every target as one table and the verdict; 0 if every target passed, else 1.

    References (passed None) are rows of the table and count for nothing in the verdict.
    """
    width = max(len(c.name) for c in checks)
    measured = max(len(c.measured) for c in checks)
    print("\n== summary ==")
    print(f"  {'target':<{width}}  {'measured':<{measured}}  {'goal':<10}  result")
    for check in checks:
        result = REFERENCE if check.passed is None else pass_fail(check.passed)
        print(f"  {check.name:<{width}}  {check.measured:<{measured}}  {check.goal:<10}  {result}")
    passed = all(check.passed for check in checks if check.passed is not None)
    print(f"\n{'ALL TARGETS PASS' if passed else 'SOME TARGETS FAIL'}")
    return 0 if passed else 1
