"""Benchmark promptbus's fast path: cache hits against a raw aiohttp baseline, then misses."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import aiohttp
from _client_floor import run_client_floor
from _common import (
    HOST,
    BenchError,
    Check,
    Children,
    Load,
    describe_machine,
    emulator_calls,
    free_port,
    report,
    run_bench,
    start_emulator,
    start_promptbus,
    wait_healthy,
)
from _fast_bench import Bench, show, verdict
from _http_load import BodyFor, ExpectedHeader
from _raw_server import serve_raw
from _wrk import wrk_version

SCRIPT: Final = Path(__file__).resolve()
GEMINI_PATH: Final = "/v1beta/models/gemini-2.5-flash:generateContent"
HIT_BODY: Final = b'{"model":"flash","prompt":"fast path benchmark: the one cached prompt"}'

QUICK_DURATION_S: Final = 3
WARMUP_S: Final = 1
EMULATOR_LATENCY_MS: Final = 200.0
OVERHEAD_WORKERS: Final = 4
THROUGHPUT_WORKERS: Final = 64

MIN_HIT_RATIO: Final = 0.5
MAX_HIT_P99_MS: Final = 5.0
MAX_MISS_OVERHEAD_MS: Final = 5.0
MIN_MISS_THROUGHPUT_RATIO: Final = 0.9


async def hit_phase(bench: Bench, raw_url: str, promptbus_url: str) -> list[Check]:
    """Phase 1: cache-hit throughput of promptbus against the raw baseline."""
    tool = "wrk -t1" if bench.wrk else "aiohttp"
    print(
        f"\n== 1. hit throughput: {tool}, {bench.connections} connections, "
        f"{bench.duration_s}s each after a {WARMUP_S}s warm-up =="
    )
    for url in (raw_url, promptbus_url):
        status, _, text = await bench.post(url, HIT_BODY)
        if status != 200:
            raise BenchError(f"warming {url} answered {status}: {text[:300]}")
    status, cache, text = await bench.post(promptbus_url, HIT_BODY)
    if status != 200 or cache != "HIT":
        raise BenchError(f"promptbus did not answer from its cache: {status} {cache} {text[:300]}")
    results: dict[str, Load] = {}
    targets: list[tuple[str, str, ExpectedHeader]] = [
        ("raw aiohttp", raw_url, None),
        ("promptbus (cache hit)", promptbus_url, ("X-Cache", "HIT")),
    ]
    for label, url, expect in targets:
        await bench.fixed_load(url, HIT_BODY, WARMUP_S, expect)
        results[label] = load = await bench.fixed_load(url, HIT_BODY, bench.duration_s, expect)
        show(label, load)
    status, cache, _ = await bench.post(promptbus_url, HIT_BODY)
    if status != 200 or cache != "HIT":
        raise BenchError(f"promptbus stopped answering from its cache: {status} {cache}")
    raw, promptbus = results["raw aiohttp"], results["promptbus (cache hit)"]
    ratio = promptbus.rate / raw.rate if raw.rate else 0.0
    print(f"  ratio promptbus/raw: {ratio:.2f}")
    return [
        verdict(
            Check(
                "hit throughput promptbus/raw",
                f"{ratio:.2f} ({promptbus.rate:.0f}/{raw.rate:.0f} req/s)",
                f">= {MIN_HIT_RATIO:g}",
                ratio >= MIN_HIT_RATIO,
            )
        ),
        verdict(
            Check(
                "promptbus hit p99",
                f"{promptbus.p99_ms:.2f} ms",
                f"<= {MAX_HIT_P99_MS:g} ms",
                promptbus.p99_ms <= MAX_HIT_P99_MS,
            )
        ),
    ]


def gemini_body(label: str) -> BodyFor:
    """Unique generateContent bodies, one per request number."""
    return lambda n: json.dumps(
        {"contents": [{"role": "user", "parts": [{"text": f"{label} {n}"}]}]}
    ).encode()


def promptbus_body(label: str) -> BodyFor:
    """Unique /v1/generate bodies, one per request number, so that none hits the cache."""
    return lambda n: json.dumps({"model": "flash", "prompt": f"{label} {n}"}).encode()


async def promptbus_misses(
    bench: Bench, emulator_url: str, promptbus_url: str, workers: int, label: str, warm: str
) -> Load:
    """Warm up, then load promptbus with unique prompts; an error unless each made one call."""
    await bench.unique_load(promptbus_url, promptbus_body(warm), workers, WARMUP_S)
    calls_before = await emulator_calls(bench.session, emulator_url)
    load = await bench.unique_load(promptbus_url, promptbus_body(label), workers, bench.duration_s)
    show("promptbus (miss)", load)
    upstream = await emulator_calls(bench.session, emulator_url) - calls_before
    sent = load.completed + load.errors.count
    print(f"  emulator calls during the run: {upstream} for {sent} requests to promptbus")
    if upstream != sent:
        load.errors.add(f"{sent} requests to promptbus but {upstream} upstream calls")
    return load


async def overhead_phase(
    bench: Bench, emulator_url: str, promptbus_url: str, run_id: str
) -> list[Check]:
    """Phase 2: what promptbus adds to the latency of a miss."""
    print(
        f"\n== 2. miss overhead: aiohttp, {OVERHEAD_WORKERS} workers, unique prompts, "
        f"emulator at {EMULATOR_LATENCY_MS:g} ms, {bench.duration_s}s each =="
    )
    direct_url = f"{emulator_url}{GEMINI_PATH}"
    await bench.unique_load(direct_url, gemini_body(f"warm {run_id}"), OVERHEAD_WORKERS, WARMUP_S)
    direct = await bench.unique_load(
        direct_url, gemini_body(f"direct {run_id}"), OVERHEAD_WORKERS, bench.duration_s
    )
    show("emulator directly", direct)
    gateway = await promptbus_misses(
        bench, emulator_url, promptbus_url, OVERHEAD_WORKERS, f"overhead {run_id}", f"warm {run_id}"
    )
    overhead = gateway.p50_ms - direct.p50_ms
    tail = gateway.p99_ms - direct.p99_ms
    print(f"  p50 overhead: {overhead:.2f} ms   p99 overhead: {tail:.2f} ms")
    floor = await bench.client_floor(emulator_url, run_id)
    show("langchain client alone", floor)
    print(
        f"  the client library alone adds {floor.p50_ms - direct.p50_ms:.2f} ms at p50; "
        f"promptbus adds {gateway.p50_ms - floor.p50_ms:.2f} ms above it"
    )
    return [
        verdict(
            Check(
                "miss p50 overhead",
                f"{overhead:.2f} ms ({gateway.p50_ms:.1f} - {direct.p50_ms:.1f})",
                f"<= {MAX_MISS_OVERHEAD_MS:g} ms",
                overhead <= MAX_MISS_OVERHEAD_MS,
            )
        )
    ]


async def throughput_phase(
    bench: Bench, emulator_url: str, promptbus_url: str, run_id: str
) -> list[Check]:
    """Phase 3: miss throughput with many requests waiting on the upstream at once."""
    ideal = THROUGHPUT_WORKERS / (EMULATOR_LATENCY_MS / 1000)
    print(
        f"\n== 3. miss throughput: aiohttp, {THROUGHPUT_WORKERS} workers, unique prompts, "
        f"emulator at {EMULATOR_LATENCY_MS:g} ms, {bench.duration_s}s, ideal {ideal:g} req/s =="
    )
    load = await promptbus_misses(
        bench,
        emulator_url,
        promptbus_url,
        THROUGHPUT_WORKERS,
        f"many {run_id}",
        f"warm-many {run_id}",
    )
    ratio = load.rate / ideal
    print(f"  achieved/ideal: {ratio:.2f}")
    return [
        verdict(
            Check(
                "miss throughput achieved/ideal",
                f"{ratio:.2f} ({load.rate:.0f}/{ideal:g} req/s)",
                f">= {MIN_MISS_THROUGHPUT_RATIO:g}",
                ratio >= MIN_MISS_THROUGHPUT_RATIO,
            )
        )
    ]


async def run(args: argparse.Namespace, children: Children, work_dir: Path) -> int:
    """Start the servers, run the three phases and print the verdict; 0 if every target passed."""
    duration_s = QUICK_DURATION_S if args.quick else args.duration
    wrk = shutil.which("wrk")
    print(f"machine: {describe_machine()}")
    if wrk is None:
        print(f"load tool (phase 1): aiohttp in the bench process, {args.connections} connections")
    else:
        print(f"load tool (phase 1): {wrk_version(wrk)} ({wrk}), 1 thread")
    print("load tool (phases 2-3): aiohttp in the bench process")

    raw_port = free_port()
    raw = children.start(
        "raw", [sys.executable, str(SCRIPT), "--raw-server", "--port", str(raw_port)]
    )
    emulator, emulator_url = start_emulator(children, EMULATOR_LATENCY_MS)
    print(f"promptbus: {'ingress only (--no-worker)' if args.no_worker else 'embedded default'}")
    serve_args = ["--no-worker"] if args.no_worker else []
    promptbus, promptbus_base = start_promptbus(children, emulator_url, *serve_args)
    promptbus_url = f"{promptbus_base}/v1/generate"
    run_id = os.urandom(4).hex()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(
            wait_healthy(session, raw, f"http://{HOST}:{raw_port}/healthz"),
            wait_healthy(session, emulator, f"{emulator_url}/healthz"),
            wait_healthy(session, promptbus, f"{promptbus_base}/healthz"),
        )
        bench = Bench(
            children,
            session,
            work_dir,
            wrk,
            duration_s,
            args.connections,
            SCRIPT,
            EMULATOR_LATENCY_MS / 1000,
        )
        checks = await hit_phase(bench, f"http://{HOST}:{raw_port}/v1/generate", promptbus_url)
        checks += await overhead_phase(bench, emulator_url, promptbus_url, run_id)
        checks += await throughput_phase(bench, emulator_url, promptbus_url, run_id)
    errors = sum(load.errors.count for load in bench.loads)
    checks.append(Check("no failed requests", f"{errors} errors", "0", errors == 0))
    return report(checks)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per phase (default 10)")
    parser.add_argument(
        "--connections", type=int, default=16, help="connections for the hit phase (default 16)"
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DURATION_S}s per phase")
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="run promptbus as an ingress only, as production ingress processes run",
    )
    parser.add_argument("--raw-server", action="store_true", help="run only the raw baseline")
    parser.add_argument("--client-floor", metavar="EMULATOR_URL", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", default="floor", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help="port of the raw baseline server")
    args = parser.parse_args(argv)
    if args.raw_server and args.port is None:
        parser.error("--raw-server needs --port")
    if args.duration < 1 or args.connections < 1:
        parser.error("--duration and --connections must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench, or the raw baseline server with --raw-server."""
    args = parse_args(argv)
    if args.raw_server:
        serve_raw(args.port)
        return 0
    if args.client_floor:
        stagger_s = EMULATOR_LATENCY_MS / 1000
        run_client_floor(args.client_floor, args.run_id, args.duration, OVERHEAD_WORKERS, stagger_s)
        return 0
    return run_bench(lambda children, work_dir: run(args, children, work_dir))


if __name__ == "__main__":
    sys.exit(main())
