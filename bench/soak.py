"""Soak promptbus: many jobs per broker through 2 ingresses and 2 workers; lost and duplicates."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import redis
from _broker import Listener, clean_broker, listener_queue_name, promptbus_completions
from _common import (
    BenchError,
    Check,
    Children,
    client_session,
    describe_machine,
    emulator_calls,
    report,
    run_bench,
)
from _scale_bench import REDIS_URL, clean_redis
from _soak_deploy import (
    SOAK_BROKER_URLS,
    Deployment,
    broker_leftovers,
    new_names,
    scan_worker_logs,
)
from _soak_load import BusPublisher, Jobs, Tally, drive, settle
from _soak_report import Figures, show, show_evidence

DEFAULT_JOBS: Final = 10_000
QUICK_JOBS: Final = 500
IN_FLIGHT: Final = 64
BUS_EVERY: Final = 5
INGRESSES: Final = 2
WORKERS: Final = 2
LATENCY_MS: Final = 5.0
# Above a Redis redelivery after a crash: the visibility timeout plus one 10 s sweep.
STALL_S: Final = 90.0
GRACE_S: Final = 5.0
VISIBILITY_TIMEOUT_S: Final = 60
HTTP_TIMEOUT_S: Final = 30.0
STOP_GRACE_S: Final = 15.0


@dataclass
class Names:
    """Every broker suffix and Redis prefix the soak used, for the clean-up at its end."""

    used: list[tuple[str, str, str]]
    logs: list[Path]


async def phase(
    args: argparse.Namespace, children: Children, work_dir: Path, broker: str, names: Names
) -> list[Check]:
    """One broker's soak under fresh names: start, submit, wait, tally, show, clean up."""
    suffix, prefix = new_names()
    names.used.append((broker, suffix, prefix))
    jobs_n = QUICK_JOBS if args.quick else args.jobs
    print(f"\n== {broker}: {jobs_n} jobs, {IN_FLIGHT} in flight, suffix {suffix}, prefix {prefix}")
    async with client_session(IN_FLIGHT * 2, HTTP_TIMEOUT_S) as session:
        deployment = Deployment(
            children, session, work_dir, broker, suffix, prefix, args.latency_ms, args.visibility
        )
        try:
            await deployment.start(INGRESSES, WORKERS)
            return await soak(args, deployment, jobs_n)
        finally:
            names.logs.extend(deployment.logs())
            await deployment.stop()


async def soak(args: argparse.Namespace, deployment: Deployment, jobs_n: int) -> list[Check]:
    """Drive the jobs through a running deployment, then show what came back."""
    broker, suffix, session = deployment.broker, deployment.suffix, deployment.session
    queue = listener_queue_name("promptbus", suffix)
    chaos: list[str] = []
    async with Listener(deployment.broker_url, promptbus_completions(suffix), queue) as listener:
        completions = listener.completions
        publisher = BusPublisher(deployment.broker_url, suffix)
        label = f"{os.urandom(3).hex()} {broker}"
        jobs = Jobs(session, deployment.ingress_urls, publisher, label, BUS_EVERY)

        async def crash_one() -> None:
            victim, at = deployment.workers[0], jobs.record.submitted
            replacement, ready_s = await deployment.replace_worker(victim)
            chaos.append(
                f"SIGKILL worker pid {victim.process.pid} at submit {at}; replacement pid "
                f"{replacement.process.pid} consuming {ready_s:.1f} s later"
            )

        try:
            calls_before = await emulator_calls(session, deployment.emulator_url)
            crash = crash_one if args.chaos else None
            await drive(jobs, jobs_n, IN_FLIGHT, completions, args.stall_s, crash)
            submit_s = jobs.record.last_at - jobs.record.first_at
            accepted = list(jobs.record.accepted)
            why = await settle(completions, accepted, args.stall_s, 10 * args.stall_s)
            await asyncio.sleep(args.grace_s)
            calls = await emulator_calls(session, deployment.emulator_url) - calls_before
        finally:
            await asyncio.to_thread(publisher.close)
        if listener.failure is not None:
            # Events it missed would count as lost jobs: no figure of this phase is sound.
            raise BenchError(f"the completion listener stopped: {listener.failure!r}")
        began = jobs.record.first_at
        firsts = [completions.arrivals[j][0].at for j in accepted if j in completions.arrivals]
        figures = Figures(
            broker=broker,
            record=jobs.record,
            tally=Tally.of(completions, accepted),
            emulator_calls=calls,
            submit_s=submit_s,
            wall_s=max(firsts, default=began) - began,
            completed_jobs=len(firsts),
            total_s=time.perf_counter() - began,
            wait_ended=why,
            stall_s=args.stall_s,
            grace_s=args.grace_s,
            leftovers=await asyncio.to_thread(broker_leftovers, deployment.broker_url, suffix),
            log_hits=scan_worker_logs(deployment.workers),
            chaos=chaos,
        )
    show(figures)
    await show_evidence(deployment, figures)
    return figures.checks()


async def run(args: argparse.Namespace, children: Children, work_dir: Path, names: Names) -> int:
    """Every broker's phase in turn, then the verdict; 0 if every target passed."""
    print(f"machine: {describe_machine(('redis-py', redis.__version__))}")
    print(
        f"deployment: emulator ({args.latency_ms:g} ms), {INGRESSES} x serve --no-worker, "
        f"{WORKERS} x worker; redis {REDIS_URL}; one job in {BUS_EVERY} published on the bus"
        f"{'; chaos: one worker SIGKILLed at half the jobs' if args.chaos else ''}"
    )
    print(f"logs: {work_dir}")
    checks: list[Check] = []
    for broker in args.brokers:
        checks += await phase(args, children, work_dir, broker, names)
    return report(checks)


def clean_up(names: Names) -> None:
    """Delete again what every phase declared, once nothing of theirs runs any more."""
    for broker, suffix, prefix in names.used:
        try:
            clean_broker(broker, suffix, SOAK_BROKER_URLS[broker])
            clean_redis(prefix)
        except Exception as exc:
            print(f"cleaning {broker} {suffix} / {prefix} failed: {exc!r}", file=sys.stderr)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--brokers", default="rabbitmq,redis", help="comma-separated, in order")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="jobs per broker")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_JOBS} jobs: a smoke run")
    parser.add_argument("--chaos", action="store_true", help="SIGKILL a worker at half the jobs")
    parser.add_argument("--latency-ms", type=float, default=LATENCY_MS, help="emulator latency")
    parser.add_argument(
        "--stall-s",
        type=float,
        default=STALL_S,
        help="end the wait after this long with no completion",
    )
    parser.add_argument("--grace-s", type=float, default=GRACE_S, help="wait for duplicates")
    parser.add_argument(
        "--visibility",
        type=int,
        default=VISIBILITY_TIMEOUT_S,
        help="PROMPTBUS_REDIS_VISIBILITY_TIMEOUT_S on Redis",
    )
    args = parser.parse_args(argv)
    args.brokers = [b for b in args.brokers.split(",") if b]
    if not args.brokers or set(args.brokers) - set(SOAK_BROKER_URLS):
        parser.error(f"--brokers takes {', '.join(SOAK_BROKER_URLS)}")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; its names are deleted and, unless it passed, its logs kept."""
    args = parse_args(argv)
    work_dir = Path(tempfile.mkdtemp(prefix="promptbus-soak-"))
    names = Names([], [])
    code = 1
    try:
        code = run_bench(lambda ch, wd: run(args, ch, wd, names), STOP_GRACE_S, work_dir)
    finally:
        clean_up(names)
        if code == 0:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            print(f"\nlogs kept in {work_dir}:", file=sys.stderr)
            for log in names.logs:
                print(f"  {log}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
