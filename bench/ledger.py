"""Benchmark the usage ledger: the rows/s its writer sustains, against promptbus's hit rate.

In one run: cache-hit throughput of promptbus with the ledger off and on (SQLite), whether the
ledger kept up with those hits (every hit's row written soon after the load), and the writer
alone on SQLite and PostgreSQL (rows/s with its default batch).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import aiohttp
import asyncpg
from _common import (
    BenchError,
    Check,
    Children,
    Load,
    describe_machine,
    report,
    run_bench,
    start_emulator,
    start_promptbus,
    wait_healthy,
)
from _fast_bench import Bench, show, verdict
from _wrk import wrk_version

SCRIPT: Final = Path(__file__).resolve()
WRITER: Final = SCRIPT.parent / "_ledger_writer.py"
HIT_BODY: Final = b'{"model":"flash","prompt":"ledger benchmark: the one cached prompt"}'
POSTGRES_DSN: Final = "postgresql://postgres@127.0.0.1:5432"
QUICK_DURATION_S: Final = 3
ROUNDS: Final = 5
QUICK_ROUNDS: Final = 2
WARMUP_S: Final = 1
WRITER_ROWS: Final = 100_000
QUICK_WRITER_ROWS: Final = 20_000
# How long after the load the ledger may take to have written every hit's row.
CATCH_UP_S: Final = 5.0

MIN_HIT_RATIO: Final = 0.9
MAX_P99_DIFF_MS: Final = 1.0


def sqlite_rows(path: Path) -> int:
    """Rows in the ledger's SQLite file (0 before the table exists)."""
    with sqlite3.connect(path, timeout=5) as connection:
        try:
            (count,) = connection.execute("SELECT count(*) FROM usage_records").fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(count)


async def caught_up(path: Path, expected: int, timeout_s: float) -> tuple[int, float]:
    """Poll the file until it holds `expected` rows; the rows seen and how long it took."""
    started = time.monotonic()
    while True:
        rows = await asyncio.to_thread(sqlite_rows, path)
        waited = time.monotonic() - started
        if rows >= expected or waited > timeout_s:
            return rows, waited
        await asyncio.sleep(0.05)


async def hit_phase(
    bench: Bench, off_url: str, on_url: str, db: Path, rounds: int
) -> tuple[list[Check], Load]:
    """Cache hits with the ledger off and on, in alternate rounds; did the ledger keep up?

    Rounds alternate (off, on, off, on...) so that a neighbour's load on a shared machine
    falls on both sides; each round's pair gives a ratio, and the median ratio is the figure
    (one disturbed round moves it least). The best rounds are shown for reference.
    """
    print(
        f"\n== 1. hit throughput, ledger off and on: {rounds} rounds of {bench.duration_s}s "
        "each, alternating =="
    )
    expect = ("X-Cache", "HIT")
    sent_on = 0
    for url in (off_url, on_url):
        for _ in range(2):
            status, _, text = await bench.post(url, HIT_BODY)
            if status != 200:
                raise BenchError(f"warming {url} answered {status}: {text[:300]}")
        warm = await bench.fixed_load(url, HIT_BODY, WARMUP_S, expect)
        if url == on_url:
            sent_on = 2 + _sent(warm)
    offs: list[Load] = []
    ons: list[Load] = []
    for round_ in range(1, rounds + 1):
        off = await bench.fixed_load(off_url, HIT_BODY, bench.duration_s, expect)
        show(f"round {round_}: ledger off", off)
        on = await bench.fixed_load(on_url, HIT_BODY, bench.duration_s, expect)
        show(f"round {round_}: ledger on", on)
        offs.append(off)
        ons.append(on)
        sent_on += _sent(on)
    rows, lag = await caught_up(db, sent_on, CATCH_UP_S)
    print(f"  rows in the ledger: {rows} for {sent_on} requests, {lag:.2f}s after the last load")
    ratios = [b.rate / a.rate if a.rate else 0.0 for a, b in zip(offs, ons, strict=True)]
    diffs = [b.p99_ms - a.p99_ms for a, b in zip(offs, ons, strict=True)]
    ratio, diff = statistics.median(ratios), statistics.median(diffs)
    print("  on/off per round: " + ", ".join(f"{r:.2f}" for r in ratios))
    print("  p99 on - off per round: " + ", ".join(f"{d:+.2f} ms" for d in diffs))
    off = max(offs, key=lambda load: load.rate)
    on = max(ons, key=lambda load: load.rate)
    checks = [
        verdict(
            Check(
                "hit throughput ledger on/off (median round)",
                f"{ratio:.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f})",
                f">= {MIN_HIT_RATIO:g}",
                ratio >= MIN_HIT_RATIO,
            )
        ),
        verdict(
            Check(
                "hit p99 ledger on - off (median round)",
                f"{diff:+.2f} ms",
                f"<= {MAX_P99_DIFF_MS:g} ms",
                diff <= MAX_P99_DIFF_MS,
            )
        ),
        verdict(
            Check(
                "best rounds on/off",
                f"{on.rate:.0f}/{off.rate:.0f} req/s, p99 {on.p99_ms:.2f}/{off.p99_ms:.2f} ms",
                "",
                None,
            )
        ),
        verdict(
            Check(
                "ledger kept up with the hits",
                f"{rows}/{sent_on} rows, {lag:.2f}s after",
                f"all in {CATCH_UP_S:g}s",
                rows >= sent_on and lag <= CATCH_UP_S,
            )
        ),
    ]
    return checks, on


def _sent(load: Load) -> int:
    return load.completed + load.errors.count


async def writer_phase(
    bench: Bench, rows: int, hits: Load, work_dir: Path, postgres: bool
) -> list[Check]:
    """The writer alone, in a process of its own, on SQLite and (if asked) PostgreSQL."""
    print(f"\n== 2. the ledger writer alone: {rows} rows, spooled first, default batch size ==")
    urls = [("SQLite", f"sqlite:///{work_dir / 'writer.db'}")]
    database = f"pbbench_{os.urandom(4).hex()}"
    if postgres:
        admin = await asyncpg.connect(f"{POSTGRES_DSN}/postgres", timeout=10)
        try:
            await admin.execute(f'CREATE DATABASE "{database}"')
        finally:
            await admin.close()
        urls.append(("PostgreSQL", f"{POSTGRES_DSN}/{database}"))
    checks: list[Check] = []
    try:
        for label, url in urls:
            numbers = await _run_writer(bench, url, rows, work_dir)
            rate = numbers["rows_per_s"]
            print(
                f"  {label:<12}{rate:>10.0f} rows/s   ({numbers['rows']:.0f} rows in "
                f"{numbers['seconds']:.2f}s, batches of {numbers['batch']:.0f})"
            )
            checks.append(
                verdict(
                    Check(
                        f"ledger writer rows/s, {label}, vs the hit rate",
                        f"{rate:.0f} rows/s vs {hits.rate:.0f} hits/s",
                        ">= hits/s" if label == "SQLite" else "",
                        rate >= hits.rate if label == "SQLite" else None,
                    )
                )
            )
    finally:
        if postgres:
            admin = await asyncpg.connect(f"{POSTGRES_DSN}/postgres", timeout=10)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            finally:
                await admin.close()
    return checks


async def _run_writer(bench: Bench, url: str, rows: int, work_dir: Path) -> dict[str, float]:
    argv = [sys.executable, "-P", str(WRITER), url, str(rows), str(work_dir)]
    child = bench.children.start("writer", argv)
    if await bench.finish(child, 600, "the writer run") != 0:
        raise BenchError(f"the writer run failed:\n{child.output()}")
    numbers: dict[str, float] = json.loads(child.output().strip().splitlines()[-1])
    return numbers


async def run(args: argparse.Namespace, children: Children, work_dir: Path) -> int:
    """Start the servers, run both phases and print the verdict; 0 if every target passed."""
    duration_s = QUICK_DURATION_S if args.quick else args.duration
    wrk = shutil.which("wrk")
    print(f"machine: {describe_machine()}")
    if wrk is None:
        print(f"load tool: aiohttp in the bench process, {args.connections} connections")
    else:
        print(f"load tool: {wrk_version(wrk)} ({wrk}), 1 thread")
    emulator, emulator_url = start_emulator(children, 0.0)
    on_dir, off_dir = work_dir / "ledger-on", work_dir / "ledger-off"
    off, off_base = start_promptbus(
        children,
        emulator_url,
        "--no-worker",
        PROMPTBUS_LEDGER_ENABLED="false",
        PROMPTBUS_DATA_DIR=str(off_dir),
    )
    on, on_base = start_promptbus(
        children, emulator_url, "--no-worker", PROMPTBUS_DATA_DIR=str(on_dir)
    )
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(
            wait_healthy(session, emulator, f"{emulator_url}/healthz"),
            wait_healthy(session, off, f"{off_base}/healthz"),
            wait_healthy(session, on, f"{on_base}/healthz"),
        )
        bench = Bench(children, session, work_dir, wrk, duration_s, args.connections, SCRIPT, 0.0)
        checks, hits = await hit_phase(
            bench,
            f"{off_base}/v1/generate",
            f"{on_base}/v1/generate",
            on_dir / "promptbus.db",
            QUICK_ROUNDS if args.quick else args.rounds,
        )
        children.stop(on, off, emulator)
        rows = QUICK_WRITER_ROWS if args.quick else args.rows
        checks += await writer_phase(bench, rows, hits, work_dir, not args.no_postgres)
    errors = sum(load.errors.count for load in bench.loads)
    checks.append(Check("no failed requests", f"{errors} errors", "0", errors == 0))
    return report(checks)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=5, help="seconds per round (default 5)")
    parser.add_argument("--connections", type=int, default=16, help="connections (default 16)")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="hit rounds per side")
    parser.add_argument("--rows", type=int, default=WRITER_ROWS, help="rows for the writer alone")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DURATION_S}s loads")
    parser.add_argument("--no-postgres", action="store_true", help="the writer on SQLite only")
    args = parser.parse_args(argv)
    if min(args.duration, args.connections, args.rows, args.rounds) < 1:
        parser.error("--duration, --connections, --rows and --rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench."""
    args = parse_args(argv)
    return run_bench(lambda children, work_dir: run(args, children, work_dir))


if __name__ == "__main__":
    sys.exit(main())
