"""Benchmark promptbus scale-out: jobs/s with 1 vs 2 worker processes, then L2 vs L1 cache hits."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
import redis
from _broker import (
    BROKER_URLS,
    Listener,
    clean_all,
    clean_broker,
    listener_queue_name,
    promptbus_completions,
)
from _closed_loop import (
    COMPLETION_TIMEOUT_S,
    IN_FLIGHT,
    Result,
    Submit,
    closed_loop,
    show,
)
from _common import (
    JSON_HEADERS,
    PROMPTBUS,
    BenchError,
    Check,
    Child,
    Children,
    Errors,
    Load,
    child_env,
    describe_machine,
    emulator_calls,
    pass_fail,
    report,
    run_bench,
    start_emulator,
    start_promptbus,
    wait_healthy,
    wait_marker,
)

BROKER: Final = "rabbitmq"
BROKER_URL: Final = BROKER_URLS[BROKER]
REDIS_URL: Final = "redis://127.0.0.1:6379/14"
# A fixed test secret: webhooks are not exercised, but the settings want one.
WEBHOOK_SECRET: Final = "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
WORKER_READY: Final = "promptbus worker consuming"

EMULATOR_LATENCY_MS: Final = 50.0
DEFAULT_JOBS: Final = 600
QUICK_JOBS: Final = 200
WARMUP_JOBS: Final = 64
STOP_GRACE_S: Final = 10.0
WORKER_COUNTS: Final = (1, 2)

DEFAULT_BODIES: Final = 5000
QUICK_BODIES: Final = 1000
WARMUP_BODIES: Final = 256
HIT_CONNECTIONS: Final = 16

MIN_SCALE_RATIO: Final = 1.7


# --- clean-up ------------------------------------------------------------------------------


def clean_redis(prefix: str) -> int:
    """Delete every key of database 14 under `prefix` (SCAN, never FLUSH); how many."""
    deleted = 0
    with redis.Redis.from_url(REDIS_URL, socket_timeout=5) as client:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.delete(*batch)
                batch.clear()
        if batch:
            deleted += client.delete(*batch)
    return deleted


def clean_prefixes(prefixes: Sequence[str]) -> None:
    """Delete what every run prefix left in Redis, reporting failures."""
    for prefix in prefixes:
        try:
            clean_redis(prefix)
        except Exception as exc:
            print(f"cleaning redis {prefix} failed: {exc!r}", file=sys.stderr)


# --- the bench -----------------------------------------------------------------------------


@dataclass
class Bench:
    """What every phase shares: the children, an HTTP session, the emulator and the run's names."""

    children: Children
    session: aiohttp.ClientSession
    work_dir: Path
    emulator_url: str
    run_id: str
    jobs: int
    bodies: int
    suffixes: list[str]
    prefixes: list[str]
    errors: list[int] = field(default_factory=list)

    def new_names(self) -> tuple[str, str]:
        """A fresh bus suffix and Redis prefix, remembered for the clean-up."""
        tag = os.urandom(5).hex()
        suffix, prefix = f".bench-{tag}", f"pbbench-{tag}:"
        self.suffixes.append(suffix)
        self.prefixes.append(prefix)
        return suffix, prefix

    def settings(self, suffix: str, prefix: str) -> dict[str, str]:
        """The environment every promptbus process of one run shares."""
        data_dir = self.work_dir / "data"
        data_dir.mkdir(exist_ok=True)
        return {
            "PROMPTBUS_BROKER_URL": BROKER_URL,
            "PROMPTBUS_BUS_SUFFIX": suffix,
            "PROMPTBUS_REDIS_URL": REDIS_URL,
            "PROMPTBUS_REDIS_PREFIX": prefix,
            "PROMPTBUS_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PROMPTBUS_DATA_DIR": str(data_dir),
        }

    async def start_ingress(self, name: str, suffix: str, prefix: str) -> tuple[Child, str]:
        """`promptbus serve --no-worker`, once healthy; the child and its base URL."""
        child, base_url = start_promptbus(
            self.children, self.emulator_url, "--no-worker", **self.settings(suffix, prefix)
        )
        await wait_healthy(self.session, child, f"{base_url}/healthz")
        print(f"  ingress {name}: pid {child.process.pid}, {base_url}")
        return child, base_url

    def start_worker(self, suffix: str, prefix: str) -> Child:
        """`promptbus worker`; it is ready once it logs WORKER_READY."""
        env = child_env(
            PROMPTBUS_GEMINI_BASE_URL=self.emulator_url,
            PROMPTBUS_OPENAI_BASE_URL=f"{self.emulator_url}/v1",
            **self.settings(suffix, prefix),
        )
        # The ready line is logged at info level.
        env["PROMPTBUS_LOG_LEVEL"] = "info"
        return self.children.start("worker", [*PROMPTBUS, "worker"], env)

    async def post_job(self, base_url: str, label: str, number: int) -> str:
        """POST /v1/jobs with a prompt of its own (no cache hit); the job id of the 202."""
        prompt = f"scale bench {self.run_id} {label} {number}"
        body = json.dumps({"model": "flash", "prompt": prompt}).encode()
        async with self.session.post(f"{base_url}/v1/jobs", data=body, headers=JSON_HEADERS) as r:
            text = await r.text()
        if r.status != 202:
            raise BenchError(f"POST /v1/jobs answered {r.status}: {text[:300]}")
        job_id: str = json.loads(text)["id"]
        return job_id

    async def emulator_calls(self) -> int:
        """How many generate calls the emulator has received."""
        return await emulator_calls(self.session, self.emulator_url)


# --- phase 1: scale ------------------------------------------------------------------------


async def scale_run(bench: Bench, workers: int) -> Result:
    """One ingress and `workers` worker processes under fresh names: the closed loop's jobs/s."""
    suffix, prefix = bench.new_names()
    label = f"{workers} worker process{'es' if workers > 1 else ''}"
    print(f"\n  -- {label}: suffix {suffix}, prefix {prefix}")
    started: list[Child] = []
    try:
        ingress, base_url = await bench.start_ingress("(no worker)", suffix, prefix)
        started.append(ingress)
        worker_children = [bench.start_worker(suffix, prefix) for _ in range(workers)]
        started += worker_children
        await asyncio.gather(*(wait_marker(w, WORKER_READY) for w in worker_children))
        pids = ", ".join(str(w.process.pid) for w in worker_children)
        print(f"  workers: pid {pids}")
        listener_queue = listener_queue_name("promptbus", suffix)
        async with Listener(BROKER_URL, promptbus_completions(suffix), listener_queue) as listener:

            def submitter(label: str) -> Submit:
                async def submit(number: int) -> str:
                    return await bench.post_job(base_url, label, number)

                return submit

            warm = await closed_loop(
                "warm-up", WARMUP_JOBS, submitter(f"warm-{workers}"), listener.completions
            )
            if warm.load.errors.count:
                raise BenchError(
                    f"warm-up with {workers} workers failed: {warm.load.errors.samples}"
                )
            calls_before = await bench.emulator_calls()
            result = await closed_loop(
                label,
                bench.jobs,
                submitter(f"run-{workers}"),
                listener.completions,
            )
            upstream = await bench.emulator_calls() - calls_before
            if upstream != bench.jobs:
                result.load.errors.add(f"{bench.jobs} jobs but {upstream} emulator calls")
            return result
    finally:
        bench.children.stop(*reversed(started))
        await asyncio.to_thread(clean_broker, BROKER, suffix)
        await asyncio.to_thread(clean_redis, prefix)


async def scale_phase(bench: Bench) -> list[Check]:
    """Phase 1: jobs/s with one worker process, then with two."""
    print(
        f"\n== 1. scale ({BROKER}, emulator at {EMULATOR_LATENCY_MS:g} ms): {bench.jobs} jobs, "
        f"{IN_FLIGHT} in flight, after {WARMUP_JOBS} warm-up jobs, per worker count =="
    )
    results = [await scale_run(bench, workers) for workers in WORKER_COUNTS]
    print()
    for result in results:
        show(result, "jobs/s")
    one, two = results[0], results[-1]
    ratio = two.load.rate / one.load.rate if one.load.rate else 0.0
    passed = ratio >= MIN_SCALE_RATIO
    print(
        f"  ratio 2 workers/1 worker jobs/s: {ratio:.2f} (goal >= {MIN_SCALE_RATIO:g}): "
        f"{pass_fail(passed)}"
    )
    errors = sum(r.load.errors.count for r in results)
    return [
        Check(
            "jobs/s 2 workers / 1 worker",
            f"{ratio:.2f} ({two.load.rate:.0f}/{one.load.rate:.0f} jobs/s)",
            f">= {MIN_SCALE_RATIO:g}",
            passed,
        ),
        Check("scale: every job completed once", f"{errors} errors", "0", errors == 0),
    ]


# --- phase 2: L2 vs L1 hits ----------------------------------------------------------------


def generate_body(label: str, number: int) -> bytes:
    """A /v1/generate body of its own."""
    return json.dumps({"model": "flash", "prompt": f"{label} {number}"}).encode()


async def each_once(url: str, bodies: Sequence[bytes], connections: int, tier: str | None) -> Load:
    """POST every body once, in order, from `connections` keep-alive connections.

    With `tier`, every answer must be a cache hit from that tier (`cache.tier`);
    without it, each must be 200 (the warm-up through ingress A).
    """
    latencies: list[float] = []
    errors = Errors()
    queue = iter(bodies)
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            for body in queue:
                began = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=JSON_HEADERS) as response:
                        payload = await response.read()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors.add(f"{type(exc).__name__}: {exc}")
                    continue
                took = time.perf_counter() - began
                if response.status != 200:
                    errors.add(f"HTTP {response.status}: {payload[:300].decode(errors='replace')}")
                    continue
                if tier is not None:
                    try:
                        cache = json.loads(payload).get("cache") or {}
                    except ValueError:
                        cache = {}
                    if not cache.get("hit") or cache.get("tier") != tier:
                        errors.add(f"cache was {cache}, not a {tier} hit")
                        continue
                latencies.append(took)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return Load.of(latencies, elapsed, errors)


async def cache_phase(bench: Bench) -> list[Check]:
    """Phase 2: ingress B answering bodies that only ingress A has seen (L2), then again (L1)."""
    count = bench.bodies
    print(
        f"\n== 2. L2 vs L1 hits: two ingress processes sharing Redis, no worker; "
        f"{count} distinct bodies warmed through A, each sent once to B (L2 hit), then once "
        f"more (L1 hit); aiohttp, {HIT_CONNECTIONS} connections =="
    )
    suffix, prefix = bench.new_names()
    print(f"  suffix {suffix}, prefix {prefix}")
    started: list[Child] = []
    try:
        a, a_url = await bench.start_ingress("A", suffix, prefix)
        started.append(a)
        b, b_url = await bench.start_ingress("B", suffix, prefix)
        started.append(b)
        warm_bodies = [
            generate_body(f"scale l2 warm {bench.run_id}", n) for n in range(WARMUP_BODIES)
        ]
        bodies = [generate_body(f"scale l2 {bench.run_id}", n) for n in range(count)]
        fill = await each_once(f"{a_url}/v1/generate", warm_bodies + bodies, IN_FLIGHT, None)
        print(
            f"  warmed through A: {fill.completed} bodies in "
            f"{fill.completed / fill.rate if fill.rate else 0:.1f}s (misses, {IN_FLIGHT} at once)"
        )
        if fill.errors.count:
            fill.errors.show()
            raise BenchError(f"warming through A failed: {fill.errors.count} errors")
        b_generate = f"{b_url}/v1/generate"
        # Unreported: B's connections and code paths, on bodies of their own.
        await each_once(b_generate, warm_bodies, HIT_CONNECTIONS, "l2")
        await each_once(b_generate, warm_bodies, HIT_CONNECTIONS, "l1")
        calls_before = await bench.emulator_calls()
        l2 = Result(
            "B, L2 hit (Redis)", count, await each_once(b_generate, bodies, HIT_CONNECTIONS, "l2")
        )
        l1 = Result(
            "B, L1 hit (in-process)",
            count,
            await each_once(b_generate, bodies, HIT_CONNECTIONS, "l1"),
        )
        upstream = await bench.emulator_calls() - calls_before
        if upstream:
            l1.load.errors.add(f"B made {upstream} emulator calls; every request should be a hit")
    finally:
        bench.children.stop(*reversed(started))
        await asyncio.to_thread(clean_broker, BROKER, suffix)
        await asyncio.to_thread(clean_redis, prefix)
    show(l2, "req/s")
    show(l1, "req/s")
    rate_ratio = l1.load.rate / l2.load.rate if l2.load.rate else 0.0
    print(
        f"  L1/L2: {rate_ratio:.2f}x req/s; p50 {l2.load.p50_ms:.2f} -> {l1.load.p50_ms:.2f} ms, "
        f"p99 {l2.load.p99_ms:.2f} -> {l1.load.p99_ms:.2f} ms (no target: reported only)"
    )
    errors = l2.load.errors.count + l1.load.errors.count
    return [
        Check("hits: each from the expected tier", f"{errors} errors", "0", errors == 0),
    ]


async def run(
    args: argparse.Namespace,
    children: Children,
    work_dir: Path,
    suffixes: list[str],
    prefixes: list[str],
) -> int:
    """Start the emulator, run both phases and print the verdict; 0 if every target passed."""
    jobs = QUICK_JOBS if args.quick else args.jobs
    bodies = QUICK_BODIES if args.quick else args.bodies
    print(f"machine: {describe_machine(('redis-py', redis.__version__))}")
    print(
        f"load: aiohttp in the bench process; phase 1 a closed loop of {IN_FLIGHT} slots, each "
        "submits a job and waits for its completion event (a listener queue of the bench's own) "
        "before the next"
    )
    print(f"redis: {REDIS_URL}, broker: {BROKER_URL.replace('guest:guest@', 'guest:***@')}")
    emulator, emulator_url = start_emulator(children, EMULATOR_LATENCY_MS)
    timeout = aiohttp.ClientTimeout(total=COMPLETION_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await wait_healthy(session, emulator, f"{emulator_url}/healthz")
        print(
            f"emulator: pid {emulator.process.pid}, {emulator_url}, "
            f"{EMULATOR_LATENCY_MS:g} ms latency"
        )
        bench = Bench(
            children,
            session,
            work_dir,
            emulator_url,
            os.urandom(4).hex(),
            jobs,
            bodies,
            suffixes,
            prefixes,
        )
        checks = await scale_phase(bench)
        checks += await cache_phase(bench)
    return report(checks)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        help=f"jobs per worker count (default {DEFAULT_JOBS})",
    )
    parser.add_argument(
        "--bodies",
        type=int,
        default=DEFAULT_BODIES,
        help=f"distinct bodies for the L2/L1 phase (default {DEFAULT_BODIES})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_JOBS} jobs and {QUICK_BODIES} bodies: a smoke run",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.bodies < 1:
        parser.error("--jobs and --bodies must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; the names it declared are deleted however it ends."""
    args = parse_args(argv)
    suffixes: list[str] = []
    prefixes: list[str] = []
    try:
        return run_bench(
            lambda children, work_dir: run(args, children, work_dir, suffixes, prefixes),
            STOP_GRACE_S,
        )
    finally:
        # Again after the children stopped: nothing of theirs is left to declare a name anew.
        clean_all([BROKER], suffixes)
        clean_prefixes(prefixes)


if __name__ == "__main__":
    sys.exit(main())
