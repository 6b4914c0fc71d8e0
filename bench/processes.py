"""Benchmark `promptbus serve --processes 2` against one process: cache-miss throughput."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp
from _common import (
    BenchError,
    Check,
    Child,
    Children,
    describe_machine,
    emulator_calls,
    report,
    run_bench,
    start_emulator_up,
    start_promptbus,
    wait_up,
)
from _fast_bench import show, verdict
from _machine import CpuUse, CpuWatch, wait_quiet
from _wrk import wrk_version
from _wrk_misses import MissRun, parse, write_script

CONNECTIONS: Final = 64
# Low enough that 64 callers are never waiting on the upstream (64 / 10 ms = 6,400 req/s,
# far above what promptbus's CPU allows), high enough to be a real network wait.
EMULATOR_LATENCY_MS: Final = 10.0
PROCESS_COUNTS: Final = (1, 2)
WARMUP_S: Final = 1
DRAIN_S: Final = 2
QUICK_DURATION_S: Final = 3
MIN_RATIO: Final = 1.6
# A round counts for the ratio only if the rest of the machine (other people's work) kept at
# most this many cores busy during both its runs; before each round the bench waits for that.
QUIET_CORES: Final = 0.15
QUIET_WAIT_S: Final = 60.0


@dataclass(frozen=True)
class Server:
    """`promptbus serve --processes N` under test."""

    processes: int
    child: Child
    url: str

    def pids(self) -> list[int]:
        """The supervisor (or the one process) and its serving children."""
        root = self.child.process.pid
        children: list[int] = []
        for task in Path(f"/proc/{root}/task").glob("*"):
            children.extend(int(p) for p in (task / "children").read_text().split())
        return [root, *children]


@dataclass
class Context:
    """What every run shares."""

    children: Children
    session: aiohttp.ClientSession
    work_dir: Path
    wrk: str
    emulator: Child
    emulator_url: str
    duration_s: int
    run_id: str
    runs: int = 0


async def start_server(ctx: Context, processes: int, serve_args: Sequence[str]) -> Server:
    """Start `serve --processes N` and wait until N processes answer on its port."""
    argv = ["--processes", str(processes), *serve_args]
    child, url = start_promptbus(ctx.children, ctx.emulator_url, *argv)
    seen: set[int] = set()

    async def all_answer() -> bool:
        # A fresh connection each time: the kernel picks the process per connection.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as fresh:
            for _ in range(8):
                try:
                    async with fresh.get(f"{url}/healthz") as response:
                        seen.add(int((await response.json())["pid"]))
                except (aiohttp.ClientError, TimeoutError):
                    return False
        return len(seen) == processes

    await wait_up(child, all_answer)
    print(f"promptbus --processes {processes}: {url}, serving pids {sorted(seen)}")
    return Server(processes, child, url)


def start_wrk(ctx: Context, url: str, label: str, duration_s: int) -> Child:
    """Start one wrk run of unique prompts for `duration_s`, drained before wrk exits."""
    script = ctx.work_dir / f"misses-{ctx.runs}.lua"
    ctx.runs += 1
    write_script(script, label, duration_s)
    argv = [ctx.wrk, "-t1", f"-c{CONNECTIONS}", f"-d{duration_s + DRAIN_S}s", "--timeout", "10s"]
    return ctx.children.start("wrk", [*argv, "--latency", "-s", str(script), url])


async def finish_wrk(ctx: Context, child: Child, duration_s: int) -> MissRun:
    """Wait for the wrk run to end; what it measured."""
    deadline = time.monotonic() + duration_s + DRAIN_S + 30
    while (code := child.process.poll()) is None:
        if time.monotonic() > deadline:
            ctx.children.stop(child)
            raise BenchError(f"wrk did not finish:\n{child.tail()}")
        await asyncio.sleep(0.05)
    if code != 0:
        raise BenchError(f"wrk exited with {code}:\n{child.output()}")
    return parse(child.output())


@dataclass(frozen=True)
class Measured:
    """One measured run, the upstream calls the emulator saw and the CPU it took."""

    run: MissRun
    calls: int
    cpu: CpuUse


async def measure(ctx: Context, server: Server, others: Sequence[Server], round_: int) -> Measured:
    """Warm up, then one measured run against `server`, with its CPU and upstream calls."""
    url = f"{server.url}/v1/generate"
    name = f"r{round_} p{server.processes} {ctx.run_id}"
    await finish_wrk(ctx, start_wrk(ctx, url, f"warm {name}", WARMUP_S), WARMUP_S)
    calls_before = await emulator_calls(ctx.session, ctx.emulator_url)
    wrk = start_wrk(ctx, url, f"miss {name}", ctx.duration_s)
    watched = {
        "promptbus": server.pids(),
        "emulator": [ctx.emulator.process.pid],
        "wrk": [wrk.process.pid],
        "idle servers": [pid for other in others for pid in other.pids()],
    }
    # CPU is read while the load runs (wrk's start to its deadline), not over the drain.
    watch = CpuWatch(watched)
    await asyncio.sleep(ctx.duration_s)
    cpu = watch.stop()
    run = await finish_wrk(ctx, wrk, ctx.duration_s)
    calls = await emulator_calls(ctx.session, ctx.emulator_url) - calls_before
    show(f"--processes {server.processes}", run.load)
    for line in cpu.describe(max(1.0, run.load.rate * cpu.elapsed_s)):
        print(f"    {line}")
    print(f"    emulator calls {calls} for {run.sent} requests sent")
    return Measured(run, calls, cpu)


async def run(args: argparse.Namespace, children: Children, work_dir: Path) -> int:
    """Start the emulator and both servers, alternate the runs, print the verdict."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError("this bench needs wrk on PATH (apt-get install -y wrk)")
    duration_s = QUICK_DURATION_S if args.quick else args.duration
    rounds = 1 if args.quick else args.rounds
    max_rounds = args.max_rounds or 2 * rounds + 1
    print(f"machine: {describe_machine()}")
    print(f"load tool: {wrk_version(wrk)} ({wrk}), 1 thread, {CONNECTIONS} connections")
    serve_args = ["--no-worker"] if args.no_worker else []
    print(f"promptbus: serve {' '.join(serve_args) or '(embedded default)'}, no Redis")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        emulator, emulator_url = await start_emulator_up(children, session, args.latency_ms)
        ctx = Context(children, session, work_dir, wrk, emulator, emulator_url, duration_s, "")
        ctx.run_id = os.urandom(4).hex()
        servers = [await start_server(ctx, n, serve_args) for n in PROCESS_COUNTS]
        print(
            f"\n== miss throughput: {CONNECTIONS} connections, unique prompts, emulator at "
            f"{args.latency_ms:g} ms, {duration_s}s per run after a {WARMUP_S}s warm-up, "
            f"{rounds} quiet round(s) wanted, at most {max_rounds} =="
        )
        measured: list[Measured] = []
        ratios: list[float] = []  # of quiet rounds only
        attempt = 0
        while len(ratios) < rounds and attempt < max_rounds:
            attempt += 1
            busy = await wait_quiet(QUIET_CORES, QUIET_WAIT_S)
            print(f"  round {attempt} (the machine kept {busy:.2f} cores busy just before)")
            # Every other round starts with two processes, so neither always goes first.
            order = servers if attempt % 2 else servers[::-1]
            pair = {}
            for server in order:
                others = [other for other in servers if other is not server]
                pair[server.processes] = await measure(ctx, server, others, attempt)
            measured += pair.values()
            one, two = pair[1].run.load.rate, pair[2].run.load.rate
            ratio = two / one if one else 0.0
            quiet = all(m.cpu.rest_cores <= QUIET_CORES for m in pair.values())
            if quiet:
                ratios.append(ratio)
            counted = "" if quiet else f"; not counted: other work took over {QUIET_CORES:g} cores"
            print(f"    ratio 2/1: {ratio:.2f}{counted}")
    ratio = statistics.median(ratios) if ratios else 0.0
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "none"
    print(
        f"\n  ratios 2/1 of the {len(ratios)} quiet round(s): "
        f"{', '.join(f'{r:.2f}' for r in ratios) or 'none'}; median {ratio:.2f}"
    )
    errors = sum(m.run.load.errors.count for m in measured)
    miscounted = [m for m in measured if m.calls != m.run.sent]
    checks = [
        verdict(
            Check(
                "miss throughput 2 processes / 1 (median of quiet rounds)",
                f"{ratio:.2f} ({len(ratios)} rounds: {spread})",
                f">= {MIN_RATIO:g}",
                ratio >= MIN_RATIO,
            )
        ),
        Check(
            "every request answered 200 with X-Cache: MISS",
            f"{errors} errors",
            "0",
            errors == 0,
        ),
        Check(
            "emulator calls = requests, every run",
            f"{len(miscounted)} of {len(measured)} runs differ",
            "0",
            not miscounted,
        ),
    ]
    return report(checks)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=8, help="seconds per run (default 8)")
    parser.add_argument("--rounds", type=int, default=5, help="quiet rounds to measure (default 5)")
    parser.add_argument(
        "--max-rounds", type=int, help="rounds to try at most (default 2 * rounds + 1)"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"one quiet round of {QUICK_DURATION_S}s"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=EMULATOR_LATENCY_MS,
        help=f"the emulator's latency (default {EMULATOR_LATENCY_MS:g})",
    )
    parser.add_argument(
        "--no-worker", action="store_true", help="run promptbus as ingress only (--no-worker)"
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.rounds < 1:
        parser.error("--duration and --rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench."""
    args = parse_args(argv)
    return run_bench(lambda children, work_dir: run(args, children, work_dir))


if __name__ == "__main__":
    sys.exit(main())
