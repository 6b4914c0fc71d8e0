"""Benchmark promptbus scale-out: jobs/s with 1 vs 2 worker processes, then L2 vs L1 cache hits."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import redis
from _broker import Listener, clean_all, listener_queue_name, promptbus_completions
from _cache_tiers import cache_phase
from _closed_loop import COMPLETION_TIMEOUT_S, IN_FLIGHT, Result, Submit, closed_loop, show
from _common import (
    BenchError,
    Check,
    Child,
    Children,
    client_session,
    describe_machine,
    emulator_calls,
    pass_fail,
    report,
    run_bench,
    start_emulator_up,
    wait_marker,
)
from _scale_bench import (
    BROKER,
    BROKER_URL,
    REDIS_URL,
    WORKER_READY,
    Bench,
    clean_prefixes,
)

EMULATOR_LATENCY_MS: Final = 50.0
DEFAULT_JOBS: Final = 600
QUICK_JOBS: Final = 200
WARMUP_JOBS: Final = 64
STOP_GRACE_S: Final = 10.0
WORKER_COUNTS: Final = (1, 2)

DEFAULT_BODIES: Final = 5000
QUICK_BODIES: Final = 1000

MIN_SCALE_RATIO: Final = 1.7


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
            calls_before = await emulator_calls(bench.session, bench.emulator_url)
            result = await closed_loop(
                label,
                bench.jobs,
                submitter(f"run-{workers}"),
                listener.completions,
            )
            upstream = await emulator_calls(bench.session, bench.emulator_url) - calls_before
            if upstream != bench.jobs:
                result.load.errors.add(f"{bench.jobs} jobs but {upstream} emulator calls")
            return result
    finally:
        await bench.release(started, suffix, prefix)


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
    async with client_session(IN_FLIGHT, COMPLETION_TIMEOUT_S) as session:
        _, emulator_url = await start_emulator_up(children, session, EMULATOR_LATENCY_MS)
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
