"""Benchmark promptbus's job pipeline against a bare Celery chain on the same broker."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
import celery
import kombu
from _bare_celery import (
    READY_MARKER,
    WORKER_CONCURRENCY,
    bare_chain,
    bare_completions,
    create_bare_celery,
    run_bare_worker,
)
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
    BenchError,
    Check,
    Child,
    Children,
    Errors,
    Load,
    child_env,
    client_session,
    describe_machine,
    emulator_calls,
    pass_fail,
    post_job_prompt,
    report,
    run_bench,
    start_emulator_up,
    start_promptbus,
    wait_healthy,
    wait_marker,
)

SCRIPT: Final = Path(__file__).resolve()

DEFAULT_JOBS: Final = 2000
QUICK_JOBS: Final = 300
WARMUP_JOBS: Final = 64
MEMORY_WARMUP_JOBS: Final = 20
MEMORY_WAIT_S: Final = 10
STOP_GRACE_S: Final = 10.0

MIN_THROUGHPUT_RATIO: Final = 0.8
MAX_MEMORY_P50_MS: Final = 10.0


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

    async def post_job(self, base_url: str, label: str, number: int) -> str:
        """POST /v1/jobs with a prompt of its own (no cache hit); the job id of the 202."""
        prompt = f"pipeline bench {self.run_id} {label} {number}"
        return await post_job_prompt(self.session, base_url, prompt)

    async def start_promptbus(self, **overrides: str) -> tuple[Child, str]:
        """`promptbus serve` on a free port against the emulator, once up; the child and its URL."""
        child, base_url = start_promptbus(self.children, self.emulator_url, **overrides)
        await wait_healthy(self.session, child, f"{base_url}/healthz")
        print(f"  promptbus serve: pid {child.process.pid}, {base_url}")
        return child, base_url


async def bare_side(bench: Bench, broker: str, suffix: str, *, with_client: bool) -> Result:
    """The bare Celery chain: a worker process, chains submitted from here.

    `with_client`: its generate task makes promptbus's LangChain call to the emulator.
    """
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
    if with_client:
        worker_argv += ["--emulator", bench.emulator_url]
    label, tag = (
        ("bare chain + client", "bareclient") if with_client else ("bare celery chain", "bare")
    )
    worker = bench.children.start("bare-worker", worker_argv, child_env())
    app = create_bare_celery(url, suffix)
    executor = ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="bench-submit")
    loop = asyncio.get_running_loop()
    try:
        await wait_marker(worker, READY_MARKER)
        print(f"  {tag} worker: pid {worker.process.pid}, concurrency {WORKER_CONCURRENCY} threads")
        listener_queue = listener_queue_name(tag, suffix)
        async with Listener(url, bare_completions(suffix), listener_queue) as listener:

            def submitter(phase: str) -> Submit:
                async def submit(number: int) -> str:
                    job_id = f"{tag}_{bench.run_id}_{phase}_{number}"
                    payload = {"job_id": job_id, "prompt": f"pipeline bench {phase} {number}"}
                    signature = bare_chain(app, job_id, payload)
                    await loop.run_in_executor(executor, signature.apply_async)
                    return job_id

                return submit

            warm = await closed_loop(
                "warm-up", WARMUP_JOBS, submitter("warm"), listener.completions
            )
            if warm.load.errors.count:
                raise BenchError(f"{tag} warm-up failed: {warm.load.errors.samples}")
            calls_before = await emulator_calls(bench.session, bench.emulator_url)
            result = await closed_loop(
                label,
                bench.jobs,
                submitter("run"),
                listener.completions,
                {"worker": worker.process.pid},
            )
            upstream = await emulator_calls(bench.session, bench.emulator_url) - calls_before
            if upstream != (bench.jobs if with_client else 0):
                result.load.errors.add(f"{bench.jobs} jobs but {upstream} emulator calls")
            return result
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
            if warm.load.errors.count:
                raise BenchError(f"promptbus warm-up failed: {warm.load.errors.samples}")
            calls_before = await emulator_calls(bench.session, bench.emulator_url)
            result = await closed_loop(
                "promptbus",
                bench.jobs,
                submitter(f"run-{broker}"),
                listener.completions,
                {"promptbus": child.process.pid, "emulator": bench.emulator_pid},
            )
            upstream = await emulator_calls(bench.session, bench.emulator_url) - calls_before
            if upstream != bench.jobs:
                result.load.errors.add(f"{bench.jobs} jobs but {upstream} emulator calls")
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
        bare = await bare_side(bench, broker, suffix, with_client=False)
        show(bare)
        with_client = await bare_side(bench, broker, suffix, with_client=True)
        show(with_client)
        promptbus = await promptbus_side(bench, broker, suffix)
        show(promptbus)
    finally:
        await asyncio.to_thread(clean_broker, broker, suffix)
    # The target: promptbus against the chain that makes the same model call, since promptbus
    # must make it; the no-op chain's ratio is printed for reference.
    ratio = promptbus.load.rate / with_client.load.rate if with_client.load.rate else 0.0
    passed = ratio >= MIN_THROUGHPUT_RATIO
    print(
        f"  ratio promptbus/(bare chain + client) jobs/s: {ratio:.2f} "
        f"(goal >= {MIN_THROUGHPUT_RATIO:g}): {pass_fail(passed)}"
    )
    ceiling = with_client.load.rate / bare.load.rate if bare.load.rate else 0.0
    of_bare = promptbus.load.rate / bare.load.rate if bare.load.rate else 0.0
    print(
        f"  the LangChain call alone caps a chain at {ceiling:.2f} of the bare chain; "
        f"promptbus reaches {of_bare:.2f} of the bare chain (no target)"
    )
    errors = bare.load.errors.count + with_client.load.errors.count + promptbus.load.errors.count
    return [
        Check(
            f"{broker} throughput promptbus/(bare+client)",
            f"{ratio:.2f} ({promptbus.load.rate:.0f}/{with_client.load.rate:.0f} jobs/s)",
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
    load = Load.of(latencies, elapsed, errors)
    show(Result("promptbus (sequential)", bench.jobs, load))
    passed = load.p50_ms <= MAX_MEMORY_P50_MS
    print(f"  p50 {load.p50_ms:.2f} ms (goal <= {MAX_MEMORY_P50_MS:g} ms): {pass_fail(passed)}")
    return [
        Check(
            "memory submit->succeeded p50",
            f"{load.p50_ms:.2f} ms (p99 {load.p99_ms:.2f} ms)",
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


async def run(args: argparse.Namespace, children: Children, suffixes: list[str]) -> int:
    """Start the emulator, run each broker's phase and print the verdict; 0 if all passed."""
    jobs = QUICK_JOBS if args.quick else args.jobs
    machine = describe_machine(("Celery", celery.__version__), ("Kombu", kombu.__version__))
    print(f"machine: {machine}")
    print(
        f"load: aiohttp and Celery clients in the bench process, closed loop: {IN_FLIGHT} slots, "
        "each submits a job and waits for its completion event before the next"
    )
    async with client_session(IN_FLIGHT, COMPLETION_TIMEOUT_S) as session:
        emulator, emulator_url = await start_emulator_up(children, session, 0)
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
    return report(checks)


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
    parser.add_argument(
        "--emulator", help="with --bare-worker: its generate task calls this emulator via LangChain"
    )
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench, or the bare baseline's worker with --bare-worker."""
    args = parse_args(argv)
    if args.bare_worker:
        run_bare_worker(args.broker, args.suffix, args.emulator)
        return 0
    suffixes: list[str] = []
    try:
        return run_bench(lambda children, _: run(args, children, suffixes), STOP_GRACE_S)
    finally:
        # Again after the children stopped: nothing of theirs is left to declare a name anew.
        clean_all(args.brokers, suffixes)


if __name__ == "__main__":
    sys.exit(main())
