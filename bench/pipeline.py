"""Benchmark promptbus's job pipeline against a bare Celery chain on the same broker."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

import aiohttp
import celery
import kombu
import redis
from celery import Celery, chain, signals
from celery.canvas import Signature
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.message import Message
from kombu.messaging import Consumer

HOST: Final = "127.0.0.1"
SCRIPT: Final = Path(__file__).resolve()
REPO: Final = SCRIPT.parent.parent
# Run with the repo as the working directory: this file's name would shadow the package.
PROMPTBUS: Final = (sys.executable, "-m", "pipeline.cli")
JSON_HEADERS: Final = {"content-type": "application/json"}

BROKER_URLS: Final = {
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
    "redis": "redis://127.0.0.1:6379/14",
    "memory": "memory://",
}
# memory:// lives inside one process: only these can carry a bare baseline in another process.
SHARED_BROKERS: Final = ("rabbitmq", "redis")

DEFAULT_JOBS: Final = 2000
QUICK_JOBS: Final = 300
IN_FLIGHT: Final = 64
WARMUP_JOBS: Final = 64
MEMORY_WARMUP_JOBS: Final = 20
# promptbus's default Settings.worker_concurrency; the bare worker gets the same.
WORKER_CONCURRENCY: Final = 16
STARTUP_TIMEOUT_S: Final = 60.0
COMPLETION_TIMEOUT_S: Final = 60.0
DUPLICATE_GRACE_S: Final = 1.0
MEMORY_WAIT_S: Final = 10
ERROR_SAMPLES: Final = 5
READY_MARKER: Final = "bench bare worker ready"

MIN_THROUGHPUT_RATIO: Final = 0.8
MAX_MEMORY_P50_MS: Final = 25.0

# The same chain as promptbus (pipeline/worker/steps.py) and the same stage families, one queue
# each (pipeline/worker/celery_app.py).
STEPS: Final = ("lookup", "generate", "postprocess", "emit")
FAMILIES: Final = {
    "lookup": "lookup",
    "generate": "generate",
    "postprocess": "finish",
    "emit": "finish",
}
STAGE_FAMILIES: Final = tuple(sorted(set(FAMILIES.values())))
# promptbus's stage queue families, its webhook deliveries included, for the clean-up.
PROMPTBUS_FAMILIES: Final = (*STAGE_FAMILIES, "webhook")


class BenchError(Exception):
    """The bench could not run: a server did not start or a broker did not answer."""


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds the stack, so the children are stopped and the broker is cleaned.
    raise SystemExit(128 + signum)


# --- names on the broker -------------------------------------------------------------------


def bare_queue_name(family: str, suffix: str) -> str:
    """The bare baseline's Celery queue (and exchange) of one stage family."""
    return f"bench.bare.{family}{suffix}"


def bare_completions(suffix: str) -> Exchange:
    """Where the bare chain's last task publishes its completion message."""
    return Exchange(f"bench.bare.completions{suffix}", type="topic", durable=True)


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


def clean_broker(broker: str, suffix: str) -> None:
    """Delete what a run under `suffix` declared: named queues and exchanges, or Redis keys."""
    url = BROKER_URLS[broker]
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


# --- the bare Celery chain -----------------------------------------------------------------


def transport_options(url: str) -> dict[str, Any]:
    """The transport options promptbus uses (pipeline/bus/connection.py)."""
    scheme = url.split("://", 1)[0]
    if scheme in ("amqp", "pyamqp"):
        return {"confirm_publish": True}
    if scheme in ("redis", "rediss"):
        return {"visibility_timeout": 3600}
    return {}


def bare_task_name(step: str) -> str:
    """The Celery task name of a bare step."""
    return f"bench.bare.{step}"


def create_bare_celery(url: str, suffix: str) -> Celery:
    """A Celery app configured as promptbus's, whose four tasks do nothing but the last publish."""
    app = Celery("promptbus-bench-bare", broker=url, set_as_current=False)
    queues = {}
    for family in STAGE_FAMILIES:
        name = bare_queue_name(family, suffix)
        queues[family] = Queue(
            name, exchange=Exchange(name, type="direct", durable=True), routing_key=name
        )
    # The same settings as pipeline/worker/celery_app.py:create_celery.
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        broker_transport_options=transport_options(url),
        broker_connection_retry_on_startup=True,
        task_queues=list(queues.values()),
        task_default_queue=queues["lookup"].name,
        task_routes={
            bare_task_name(step): {"queue": queues[family].name}
            for step, family in FAMILIES.items()
        },
        worker_enable_remote_control=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_concurrency=WORKER_CONCURRENCY,
        broker_pool_limit=WORKER_CONCURRENCY,
    )
    completions = bare_completions(suffix)

    def pass_on(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    def emit(payload: dict[str, Any]) -> dict[str, Any]:
        event = {"job_id": payload["job_id"], "state": "succeeded"}
        with app.producer_or_acquire() as producer:
            # As promptbus publishes its completion: persistent JSON, routed by outcome.
            producer.publish(
                json.dumps(event).encode(),
                exchange=completions,
                routing_key="completion.succeeded",
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                declare=[completions],
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.1},
            )
        return payload

    for step in STEPS:
        app.task(name=bare_task_name(step), acks_late=True, shared=False)(
            emit if step == "emit" else pass_on
        )
    return app


def bare_chain(app: Celery, job_id: str, payload: dict[str, Any]) -> Signature:
    """The four-task chain of one bare job, task ids `{job_id}.{step}` as promptbus's."""
    first, *rest = (
        app.signature(bare_task_name(step), task_id=f"{job_id}.{step}") for step in STEPS
    )
    return chain(first.clone(args=(payload,)), *rest)


def run_bare_worker(url: str, suffix: str) -> None:
    """Run the bare baseline's Celery worker on threads, as promptbus's embedded worker runs."""
    app = create_bare_celery(url, suffix)

    def ready(**_: Any) -> None:
        print(READY_MARKER, flush=True)

    signals.worker_ready.connect(ready, weak=False)
    worker = app.Worker(
        pool="threads",
        concurrency=WORKER_CONCURRENCY,
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        redirect_stdouts=False,
        quiet=True,
        hostname=f"bench-bare-{os.getpid()}@localhost",
    )
    worker.start()


# --- child processes -----------------------------------------------------------------------


@dataclass
class Child:
    """A process the bench started, with its output in a file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 20) -> str:
        """The last `lines` lines the process printed."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Children:
    """Starts child processes, each in its own session, and stops those still running on exit."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._started: list[Child] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Child:
        """Start `argv` in the repo, its output in a log file."""
        log = self._log_dir / f"{name}-{len(self._started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
            )
        child = Child(name, process, log)
        self._started.append(child)
        return child

    def stop(self, *children: Child) -> None:
        """Terminate `children` by pid, killing any that outlive a grace period."""
        running = [c for c in children if c.process.poll() is None]
        for child in running:
            child.process.terminate()
        for child in running:
            try:
                child.process.wait(timeout=10)
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


async def wait_healthy(session: aiohttp.ClientSession, child: Child, url: str) -> None:
    """Return once `url` answers 200; fail if the child exits or takes too long."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if (code := child.process.poll()) is not None:
            raise BenchError(f"{child.name} exited with {code} before it was up:\n{child.tail()}")
        with suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(url) as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise BenchError(f"{child.name} was not up within {STARTUP_TIMEOUT_S:g}s:\n{child.tail()}")


async def wait_marker(child: Child, marker: str) -> None:
    """Return once the child has printed `marker`; fail if it exits or takes too long."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if marker in child.log.read_text(errors="replace"):
            return
        if (code := child.process.poll()) is not None:
            raise BenchError(f"{child.name} exited with {code} before it was up:\n{child.tail()}")
        await asyncio.sleep(0.1)
    raise BenchError(f"{child.name} was not up within {STARTUP_TIMEOUT_S:g}s:\n{child.tail()}")


# --- completion events ---------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """One completion event the listener received, and when."""

    at: float
    state: str | None
    cache_hit: bool


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
            queue_name, exchange=exchange, routing_key="completion.*", durable=False
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
        with suppress(ValueError, TypeError, AttributeError):
            body = json.loads(message.body)
            job_id, state = body.get("job_id"), body.get("state")
            hit = bool((body.get("cache") or {}).get("hit"))
        self._loop.call_soon_threadsafe(
            self.completions.arrived, job_id, Arrival(at=at, state=state, cache_hit=hit)
        )


# --- load and results ----------------------------------------------------------------------


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


@dataclass(frozen=True)
class Result:
    """What one measured run gave."""

    label: str
    jobs: int
    completed: int
    rate: float
    p50_ms: float
    p99_ms: float
    errors: Errors
    cpu: str = ""


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far by some processes, and the machine's busy and total ticks."""

    seconds: dict[str, float]
    busy: int
    total: int


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(pids: Mapping[str, int]) -> CpuSnapshot:
    """CPU used so far by `pids` (by name) and by the whole machine."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]
    seconds = {name: process_cpu_s(pid) for name, pid in pids.items()}
    return CpuSnapshot(seconds, busy=sum(ticks) - idle, total=sum(ticks))


def describe_cpu(before: CpuSnapshot, after: CpuSnapshot, jobs: int) -> str:
    """CPU ms per job of each process between two snapshots, and how busy the machine was."""
    per_job = ", ".join(
        f"{name} {(after.seconds[name] - before.seconds[name]) * 1000 / jobs:.2f}"
        for name in before.seconds
    )
    total = after.total - before.total
    busy = 100 * (after.busy - before.busy) / total if total else math.nan
    return f"cpu ms/job: {per_job}; machine {busy:.0f}% busy ({os.cpu_count()} cores)"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank `q` percentile (0-100) of already sorted values; nan if empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


Submit = Callable[[int], Awaitable[str]]


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


async def closed_loop(
    label: str,
    count: int,
    submit: Submit,
    completions: Completions,
    pids: Mapping[str, int] | None = None,
) -> Result:
    """`count` jobs from IN_FLIGHT slots, each submitting one job and awaiting its completion."""
    numbers = iter(range(count))
    latencies: list[float] = []
    job_ids: list[str] = []
    errors = Errors()
    last_done = 0.0

    async def slot() -> None:
        nonlocal last_done
        for number in numbers:
            began = time.perf_counter()
            try:
                job_id = await submit(number)
            except Exception as exc:
                errors.add(f"submit failed: {type(exc).__name__}: {exc}")
                continue
            job_ids.append(job_id)
            done_at = await completions.wait(job_id, COMPLETION_TIMEOUT_S)
            if done_at is not None:
                latencies.append(done_at - began)
                last_done = max(last_done, done_at)

    pids = {"bench": os.getpid(), **(pids or {})}
    before = cpu_snapshot(pids)
    started = time.perf_counter()
    await asyncio.gather(*(slot() for _ in range(IN_FLIGHT)))
    cpu = describe_cpu(before, cpu_snapshot(pids), count)
    # A late duplicate would show up here.
    await asyncio.sleep(DUPLICATE_GRACE_S)
    audit(completions, job_ids, errors)
    latencies.sort()
    elapsed = last_done - started
    return Result(
        label=label,
        jobs=count,
        completed=len(latencies),
        rate=len(latencies) / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        errors=errors,
        cpu=cpu,
    )


def show(result: Result, unit: str = "jobs/s") -> None:
    """Print one result as a table row, then its first errors."""
    print(
        f"  {result.label:<22}{result.rate:>9.1f} {unit:<7}p50 {result.p50_ms:8.2f} ms   "
        f"p99 {result.p99_ms:8.2f} ms   completed {result.completed:>5}/{result.jobs:<5}   "
        f"errors {result.errors.count}"
    )
    if result.cpu:
        print(f"      {result.cpu}")
    for sample in result.errors.samples:
        print(f"      error: {sample}")


@dataclass(frozen=True)
class Check:
    """One target: the measured value against the goal."""

    name: str
    measured: str
    goal: str
    passed: bool


def pass_fail(passed: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if passed else "FAIL"


# --- phases --------------------------------------------------------------------------------


@dataclass
class Bench:
    """What every phase shares: the children, an HTTP session, the emulator and the run id."""

    children: Children
    session: aiohttp.ClientSession
    emulator_url: str
    emulator_pid: int
    run_id: str
    jobs: int
    suffixes: list[str]

    def promptbus_body(self, label: str, number: int) -> bytes:
        """A job submission with a prompt of its own, so that none is a cache hit."""
        prompt = f"pipeline bench {self.run_id} {label} {number}"
        return json.dumps({"model": "flash", "prompt": prompt}).encode()

    async def post_job(self, base_url: str, label: str, number: int) -> str:
        """POST /v1/jobs; the job id of the 202."""
        body = self.promptbus_body(label, number)
        async with self.session.post(f"{base_url}/v1/jobs", data=body, headers=JSON_HEADERS) as r:
            text = await r.text()
        if r.status != 202:
            raise BenchError(f"POST /v1/jobs answered {r.status}: {text[:300]}")
        job_id: str = json.loads(text)["id"]
        return job_id

    async def emulator_calls(self) -> int:
        """How many generate calls the emulator has received."""
        async with self.session.get(f"{self.emulator_url}/stats") as response:
            calls: int = (await response.json())["calls"]
        return calls

    async def start_promptbus(self, **overrides: str) -> tuple[Child, str]:
        """`promptbus serve` on a free port against the emulator; the child and its URL."""
        port = free_port()
        env = child_env(
            PROMPTBUS_HOST=HOST,
            PROMPTBUS_PORT=str(port),
            PROMPTBUS_GEMINI_BASE_URL=self.emulator_url,
            **overrides,
        )
        child = self.children.start("promptbus", [*PROMPTBUS, "serve"], env)
        base_url = f"http://{HOST}:{port}"
        await wait_healthy(self.session, child, f"{base_url}/healthz")
        print(f"  promptbus serve: pid {child.process.pid}, {base_url}")
        return child, base_url


async def bare_side(bench: Bench, broker: str, suffix: str) -> Result:
    """The bare Celery chain: a worker process, chains submitted from here."""
    url = BROKER_URLS[broker]
    worker_argv = [
        sys.executable,
        str(SCRIPT),
        "--bare-worker",
        "--broker",
        url,
        "--suffix",
        suffix,
    ]
    worker = bench.children.start("bare-worker", worker_argv, child_env())
    app = create_bare_celery(url, suffix)
    executor = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="bench-submit")
    loop = asyncio.get_running_loop()
    try:
        await wait_marker(worker, READY_MARKER)
        print(f"  bare worker: pid {worker.process.pid}, concurrency {WORKER_CONCURRENCY} threads")
        listener_queue = listener_queue_name("bare", suffix)
        async with Listener(url, bare_completions(suffix), listener_queue) as listener:

            def submitter(label: str) -> Submit:
                async def submit(number: int) -> str:
                    job_id = f"bare_{bench.run_id}_{label}_{number}"
                    payload = {"job_id": job_id, "prompt": f"pipeline bench {label} {number}"}
                    signature = bare_chain(app, job_id, payload)
                    await loop.run_in_executor(executor, signature.apply_async)
                    return job_id

                return submit

            warm = await closed_loop(
                "warm-up", WARMUP_JOBS, submitter("warm"), listener.completions
            )
            if warm.errors.count:
                raise BenchError(f"bare warm-up failed: {warm.errors.samples}")
            return await closed_loop(
                "bare celery chain",
                bench.jobs,
                submitter("run"),
                listener.completions,
                {"worker": worker.process.pid},
            )
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        await asyncio.to_thread(app.close)
        bench.children.stop(worker)


async def promptbus_side(bench: Bench, broker: str, suffix: str) -> Result:
    """promptbus serve on the broker: jobs over HTTP, completion events from its exchange."""
    url = BROKER_URLS[broker]
    child, base_url = await bench.start_promptbus(
        PROMPTBUS_BROKER_URL=url, PROMPTBUS_BUS_SUFFIX=suffix
    )
    try:
        listener_queue = listener_queue_name("promptbus", suffix)
        async with Listener(url, promptbus_completions(suffix), listener_queue) as listener:

            def submitter(label: str) -> Submit:
                async def submit(number: int) -> str:
                    return await bench.post_job(base_url, label, number)

                return submit

            warm = await closed_loop(
                "warm-up", WARMUP_JOBS, submitter("warm"), listener.completions
            )
            if warm.errors.count:
                raise BenchError(f"promptbus warm-up failed: {warm.errors.samples}")
            calls_before = await bench.emulator_calls()
            result = await closed_loop(
                "promptbus",
                bench.jobs,
                submitter(f"run-{broker}"),
                listener.completions,
                {"promptbus": child.process.pid, "emulator": bench.emulator_pid},
            )
            upstream = await bench.emulator_calls() - calls_before
            if upstream != bench.jobs:
                result.errors.add(f"{bench.jobs} jobs but {upstream} emulator calls")
            return result
    finally:
        bench.children.stop(child)


async def broker_phase(bench: Bench, broker: str) -> list[Check]:
    """The bare chain and promptbus on one shared broker, the same load on each."""
    suffix = f".bench-{os.urandom(5).hex()}"
    bench.suffixes.append(suffix)
    url = BROKER_URLS[broker].replace("guest:guest@", "guest:***@")
    print(
        f"\n== {broker} ({url}, suffix {suffix}): {bench.jobs} jobs, {IN_FLIGHT} in flight, "
        f"after {WARMUP_JOBS} warm-up jobs =="
    )
    try:
        bare = await bare_side(bench, broker, suffix)
        show(bare)
        promptbus = await promptbus_side(bench, broker, suffix)
        show(promptbus)
    finally:
        await asyncio.to_thread(clean_broker, broker, suffix)
    ratio = promptbus.rate / bare.rate if bare.rate else 0.0
    passed = ratio >= MIN_THROUGHPUT_RATIO
    print(
        f"  ratio promptbus/bare jobs/s: {ratio:.2f} (goal >= {MIN_THROUGHPUT_RATIO:g}): "
        f"{pass_fail(passed)}"
    )
    errors = bare.errors.count + promptbus.errors.count
    return [
        Check(
            f"{broker} throughput promptbus/bare",
            f"{ratio:.2f} ({promptbus.rate:.0f}/{bare.rate:.0f} jobs/s)",
            f">= {MIN_THROUGHPUT_RATIO:g}",
            passed,
        ),
        Check(f"{broker} every job completed once", f"{errors} errors", "0", errors == 0),
    ]


async def memory_phase(bench: Bench) -> list[Check]:
    """promptbus on memory://, one job at a time: POST, then GET ?wait= until succeeded."""
    print(
        f"\n== memory (embedded default): {bench.jobs} jobs one at a time, "
        f"POST /v1/jobs then GET /v1/jobs/{{id}}?wait={MEMORY_WAIT_S} =="
    )
    child, base_url = await bench.start_promptbus()
    try:

        async def one(label: str, number: int) -> float:
            began = time.perf_counter()
            job_id = await bench.post_job(base_url, label, number)
            async with bench.session.get(f"{base_url}/v1/jobs/{job_id}?wait={MEMORY_WAIT_S}") as r:
                job = await r.json(content_type=None)
            done = time.perf_counter()
            if r.status != 200 or job.get("state") != "succeeded":
                raise BenchError(f"job {job_id}: HTTP {r.status}, state {job.get('state')}")
            return done - began

        for number in range(MEMORY_WARMUP_JOBS):
            await one("memory-warm", number)
        errors = Errors()
        latencies: list[float] = []
        started = time.perf_counter()
        for number in range(bench.jobs):
            try:
                latencies.append(await one("memory-run", number))
            except (aiohttp.ClientError, TimeoutError, BenchError, ValueError) as exc:
                errors.add(f"{type(exc).__name__}: {exc}")
        elapsed = time.perf_counter() - started
    finally:
        bench.children.stop(child)
    latencies.sort()
    result = Result(
        label="promptbus (sequential)",
        jobs=bench.jobs,
        completed=len(latencies),
        rate=len(latencies) / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        errors=errors,
    )
    show(result)
    passed = result.p50_ms <= MAX_MEMORY_P50_MS
    print(f"  p50 {result.p50_ms:.2f} ms (goal <= {MAX_MEMORY_P50_MS:g} ms): {pass_fail(passed)}")
    return [
        Check(
            "memory submit->succeeded p50",
            f"{result.p50_ms:.2f} ms (p99 {result.p99_ms:.2f} ms)",
            f"<= {MAX_MEMORY_P50_MS:g} ms",
            passed,
        ),
        Check(
            "memory every job succeeded",
            f"{errors.count} errors",
            "0",
            errors.count == 0,
        ),
    ]


def describe_machine() -> str:
    """Cores, CPU model and versions, for the header."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, Celery {celery.__version__}, "
        f"Kombu {kombu.__version__}, aiohttp {aiohttp.__version__}"
    )


def print_summary(checks: Sequence[Check]) -> None:
    """Print every target as one table."""
    width = max(len(c.name) for c in checks)
    measured = max(len(c.measured) for c in checks)
    print("\n== summary ==")
    print(f"  {'target':<{width}}  {'measured':<{measured}}  {'goal':<10}  result")
    for check in checks:
        print(
            f"  {check.name:<{width}}  {check.measured:<{measured}}  {check.goal:<10}  "
            f"{pass_fail(check.passed)}"
        )


async def run(args: argparse.Namespace, children: Children, suffixes: list[str]) -> int:
    """Start the emulator, run each broker's phase and print the verdict; 0 if all passed."""
    jobs = QUICK_JOBS if args.quick else args.jobs
    print(f"machine: {describe_machine()}")
    print(
        f"load: aiohttp and Celery clients in the bench process, closed loop: {IN_FLIGHT} slots, "
        "each submits a job and waits for its completion event before the next"
    )
    emulator_port = free_port()
    emulator_url = f"http://{HOST}:{emulator_port}"
    emulator_argv = ["emulator", "--host", HOST, "--port", str(emulator_port), "--latency-ms", "0"]
    emulator = children.start("emulator", [*PROMPTBUS, *emulator_argv], child_env())
    timeout = aiohttp.ClientTimeout(total=COMPLETION_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await wait_healthy(session, emulator, f"{emulator_url}/healthz")
        print(f"emulator: pid {emulator.process.pid}, {emulator_url}, 0 ms latency")
        bench = Bench(
            children,
            session,
            emulator_url,
            emulator.process.pid,
            os.urandom(4).hex(),
            jobs,
            suffixes,
        )
        checks: list[Check] = []
        for broker in args.brokers:
            if broker == "memory":
                checks += await memory_phase(bench)
            else:
                checks += await broker_phase(bench, broker)
    print_summary(checks)
    passed = all(check.passed for check in checks)
    print(f"\n{'ALL TARGETS PASS' if passed else 'SOME TARGETS FAIL'}")
    return 0 if passed else 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--jobs", type=int, default=DEFAULT_JOBS, help=f"jobs per side (default {DEFAULT_JOBS})"
    )
    parser.add_argument(
        "--brokers",
        default="rabbitmq,redis,memory",
        help="comma-separated, from rabbitmq, redis, memory (default all three)",
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_JOBS} jobs: a smoke run")
    parser.add_argument("--bare-worker", action="store_true", help="run only the bare worker")
    parser.add_argument("--broker", help="broker URL of the bare worker")
    parser.add_argument("--suffix", help="name suffix of the bare worker's queues")
    args = parser.parse_args(argv)
    if args.bare_worker:
        if not args.broker or args.suffix is None:
            parser.error("--bare-worker needs --broker and --suffix")
        return args
    args.brokers = [b.strip() for b in args.brokers.split(",") if b.strip()]
    unknown = [b for b in args.brokers if b not in BROKER_URLS]
    if unknown or not args.brokers:
        parser.error(f"unknown brokers {unknown}; choose from {', '.join(BROKER_URLS)}")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


def clean_all(brokers: Sequence[str], suffixes: Sequence[str]) -> None:
    """Delete what every run suffix declared on each shared broker, reporting failures."""
    for suffix in suffixes:
        for broker in brokers:
            if broker in SHARED_BROKERS:
                try:
                    clean_broker(broker, suffix)
                except Exception as exc:
                    print(f"cleaning {broker} {suffix} failed: {exc!r}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench, or the bare baseline's worker with --bare-worker."""
    args = parse_args(argv)
    if args.bare_worker:
        run_bare_worker(args.broker, args.suffix)
        return 0
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    suffixes: list[str] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="promptbus-bench-") as tmp,
            Children(Path(tmp)) as children,
        ):
            try:
                return asyncio.run(run(args, children, suffixes))
            except KeyboardInterrupt:
                print("\ninterrupted: stopping the servers", file=sys.stderr)
                return 130
            except BenchError as exc:
                print(f"\nbench failed: {exc}", file=sys.stderr)
                return 1
    finally:
        # Again after the children stopped: nothing of theirs is left to declare a name anew.
        clean_all(args.brokers, suffixes)


if __name__ == "__main__":
    sys.exit(main())
