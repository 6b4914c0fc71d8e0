"""Benchmark promptbus's batches against a bare Celery group of the same LangChain call."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import aiohttp
import celery
import kombu
from _bare_celery import READY_MARKER, bare_completions
from _bare_group import bare_group, create_bare_group, run_bare_group_worker
from _batch_bench import Bench, Side, batch_concurrency, promptbus_settings, wait_finished
from _broker import (
    BROKER_URLS,
    SHARED_BROKERS,
    Listener,
    clean_all,
    clean_broker,
    listener_queue_name,
)
from _common import (
    PROMPTBUS,
    BenchError,
    Check,
    Child,
    Children,
    child_env,
    client_session,
    describe_machine,
    pass_fail,
    report,
    run_bench,
    start_emulator_up,
    start_promptbus,
    wait_healthy,
    wait_marker,
)
from _rss import PeakRss
from _scale_bench import REDIS_URL, WEBHOOK_SECRET, WORKER_READY, clean_prefixes, clean_redis

SCRIPT: Final = Path(__file__).resolve()

DEFAULT_ITEMS: Final = 10_000
DEFAULT_RUNS: Final = 2
LATENCY_MS: Final = 200.0
WORKERS: Final = 2
WARMUP_ITEMS: Final = 64
DUPLICATE_GRACE_S: Final = 1.0
STOP_GRACE_S: Final = 15.0
HTTP_TIMEOUT_S: Final = 120.0

MIN_RATIO: Final = 0.8
FINAL: Final = ("completed", "failed", "expired", "cancelled")


# --- the bare Celery group ----------------------------------------------------------------


async def bare_side(bench: Bench, broker: str) -> Side:
    """2 bare workers; a group of one task per item sent from here, timed to the last completion."""
    url = BROKER_URLS[broker]
    suffix, _ = bench.new_names()
    argv = [sys.executable, str(SCRIPT), "--bare-worker", "--worker-url", url, "--suffix", suffix]
    argv += ["--concurrency", str(bench.per_worker), "--emulator", bench.emulator_url]
    workers = [bench.children.start("bare-worker", argv, child_env()) for _ in range(WORKERS)]
    app = create_bare_group(url, suffix, bench.per_worker, None)
    try:
        await asyncio.gather(*(wait_marker(w, READY_MARKER) for w in workers))
        print(f"  bare workers: pid {', '.join(str(w.process.pid) for w in workers)}")
        queue = listener_queue_name("bare", suffix)
        async with Listener(url, bare_completions(suffix), queue) as listener:
            arrivals = listener.completions.arrivals

            async def run_group(label: str, count: int) -> float:
                prompts = bench.prompts(f"bare-{label}", count)
                ids = [f"{label}-{suffix}.{n}" for n in range(count)]
                signature = bare_group(app, f"{label}-{suffix}", prompts)
                began = time.perf_counter()
                await asyncio.to_thread(signature.apply_async)

                async def finished() -> int:
                    return sum(job_id in arrivals for job_id in ids)

                return await wait_finished(finished, count, f"bare {label}") - began

            await run_group("warm", WARMUP_ITEMS)
            before = await bench.calls()
            roots = {f"worker {n + 1}": w.process.pid for n, w in enumerate(workers)}
            async with PeakRss(roots) as rss:
                elapsed = await run_group("run", bench.items)
            await asyncio.sleep(DUPLICATE_GRACE_S)
            errors = []
            extra = sum(len(a) - 1 for k, a in arrivals.items() if k.startswith("run-"))
            if extra:
                errors.append(f"{extra} duplicate completions")
            upstream = await bench.calls() - before
            if upstream != bench.items:
                errors.append(f"{bench.items} items but {upstream} emulator calls")
        return Side("bare celery group", bench.items, elapsed, errors, rss)
    finally:
        await asyncio.to_thread(app.close)
        bench.children.stop(*workers)
        await asyncio.to_thread(clean_broker, broker, suffix)


# --- promptbus -----------------------------------------------------------------------------


def jsonl(custom_ids: Sequence[str], prompts: Sequence[str]) -> bytes:
    """A batch input file of /v1/generate lines."""
    lines = (
        json.dumps(
            {
                "custom_id": custom_id,
                "method": "POST",
                "url": "/v1/generate",
                "body": {"model": "flash", "prompt": prompt},
            }
        )
        for custom_id, prompt in zip(custom_ids, prompts, strict=True)
    )
    return "\n".join(lines).encode() + b"\n"


async def http_json(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> dict[str, Any]:
    """A request answered 200 with a JSON object."""
    async with session.request(method, url, **kwargs) as response:
        text = await response.text()
    if response.status != 200:
        raise BenchError(f"{method} {url} answered {response.status}: {text[:300]}")
    found: dict[str, Any] = json.loads(text)
    return found


async def run_batch(bench: Bench, base_url: str, label: str, count: int) -> tuple[float, list[str]]:
    """Upload a file of `count` unique prompts, create its batch and wait for its end.

    The time from POST /v1/batches to the poll that saw it `completed`, and the errors.
    """
    custom_ids = [f"{label}-{n}" for n in range(count)]
    form = aiohttp.FormData()
    form.add_field("purpose", "batch")
    form.add_field(
        "file", jsonl(custom_ids, bench.prompts(label, count)), filename=f"{label}.jsonl"
    )
    uploaded = await http_json(bench.session, "POST", f"{base_url}/v1/files", data=form)
    create = {
        "input_file_id": uploaded["id"],
        "endpoint": "/v1/generate",
        "completion_window": "24h",
    }
    began = time.perf_counter()
    batch = await http_json(bench.session, "POST", f"{base_url}/v1/batches", json=create)
    url = f"{base_url}/v1/batches/{batch['id']}"
    state: dict[str, Any] = {}

    async def finished() -> int:
        state.update(await http_json(bench.session, "GET", url))
        if state["status"] in FINAL:
            return count
        # Every item done is not the end: the batch is done once its files are made.
        counts = state["request_counts"]
        return min(count - 1, int(counts["completed"] + counts["failed"]))

    elapsed = await wait_finished(finished, count, f"promptbus batch {label}") - began
    errors = []
    expected = {"total": count, "completed": count, "failed": 0}
    if state["status"] != "completed" or state["request_counts"] != expected:
        errors.append(f"ended {state['status']} with {state['request_counts']}")
    if state.get("output_file_id"):
        content = f"{base_url}/v1/files/{state['output_file_id']}/content"
        async with bench.session.get(content) as response:
            lines = [json.loads(line) for line in (await response.read()).splitlines() if line]
        seen = sorted(line["custom_id"] for line in lines)
        if seen != sorted(custom_ids):
            errors.append(f"{len(seen)} output lines, {len(set(seen))} custom ids, of {count}")
    return elapsed, errors


async def promptbus_side(bench: Bench, broker: str) -> Side:
    """An ingress and 2 `promptbus worker`s on the broker; a batch of every item, timed."""
    suffix, prefix = bench.new_names()
    data_dir = bench.work_dir / f"data{suffix}"
    data_dir.mkdir()
    shared = {
        "PROMPTBUS_BROKER_URL": BROKER_URLS[broker],
        "PROMPTBUS_BUS_SUFFIX": suffix,
        "PROMPTBUS_REDIS_URL": REDIS_URL,
        "PROMPTBUS_REDIS_PREFIX": prefix,
        "PROMPTBUS_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PROMPTBUS_DATA_DIR": str(data_dir),
    }
    started: list[Child] = []
    try:
        ingress, base_url = start_promptbus(
            bench.children, bench.emulator_url, "--no-worker", **shared
        )
        started.append(ingress)
        await wait_healthy(bench.session, ingress, f"{base_url}/healthz")
        env = child_env(
            PROMPTBUS_GEMINI_BASE_URL=bench.emulator_url,
            PROMPTBUS_OPENAI_BASE_URL=f"{bench.emulator_url}/v1",
            **shared,
        )
        env["PROMPTBUS_LOG_LEVEL"] = "info"  # the ready line is logged at info level
        workers = [
            bench.children.start("worker", [*PROMPTBUS, "worker"], env) for _ in range(WORKERS)
        ]
        started += workers
        await asyncio.gather(*(wait_marker(w, WORKER_READY) for w in workers))
        pids = ", ".join(str(w.process.pid) for w in workers)
        print(f"  promptbus ingress: pid {ingress.process.pid}, {base_url}; workers: pid {pids}")
        _, warm_errors = await run_batch(bench, base_url, f"warm{suffix}", WARMUP_ITEMS)
        if warm_errors:
            raise BenchError(f"promptbus warm-up batch: {warm_errors}")
        before = await bench.calls()
        roots = {"ingress": ingress.process.pid}
        roots |= {f"worker {n + 1}": w.process.pid for n, w in enumerate(workers)}
        async with PeakRss(roots) as rss:
            elapsed, errors = await run_batch(bench, base_url, f"run{suffix}", bench.items)
        upstream = await bench.calls() - before
        if upstream != bench.items:
            errors.append(f"{bench.items} items but {upstream} emulator calls")
        return Side("promptbus batch", bench.items, elapsed, errors, rss)
    finally:
        bench.children.stop(*reversed(started))
        await asyncio.to_thread(clean_broker, broker, suffix)
        await asyncio.to_thread(clean_redis, prefix)


# --- the run -------------------------------------------------------------------------------


async def compare(bench: Bench, broker: str, run: int, ideal: float) -> list[Check]:
    """Both sides on one broker, in turn (the bare group first in odd runs)."""
    url = BROKER_URLS[broker].replace("guest:guest@", "guest:***@")
    print(f"\n== run {run}, {broker} ({url}): {bench.items} unique items ==")
    order = [bare_side, promptbus_side] if run % 2 else [promptbus_side, bare_side]
    sides = {}
    for side in order:
        result = await side(bench, broker)
        result.show(ideal)
        sides[side] = result
    bare, promptbus = sides[bare_side], sides[promptbus_side]
    ratio = promptbus.rate / bare.rate if bare.rate else 0.0
    passed = ratio >= MIN_RATIO
    verdict = pass_fail(passed)
    print(f"  ratio promptbus/bare items/s: {ratio:.2f} (goal >= {MIN_RATIO:g}): {verdict}")
    errors = len(bare.errors) + len(promptbus.errors)
    name = f"{broker} run {run}"
    peaks = promptbus.rss.peaks
    return [
        Check(
            f"{name} items/s promptbus/bare",
            f"{ratio:.2f} ({promptbus.rate:.1f}/{bare.rate:.1f})",
            f">= {MIN_RATIO:g}",
            passed,
        ),
        Check(f"{name} every item once", f"{errors} errors", "0", errors == 0),
        Check(
            f"{name} promptbus peak RSS MiB",
            ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()),
            "stated",
            None,
        ),
        Check(
            f"{name} bare peak RSS MiB",
            ", ".join(f"{k} {v:.0f}" for k, v in bare.rss.peaks.items()),
            "stated",
            None,
        ),
    ]


async def run(
    args: argparse.Namespace, children: Children, work_dir: Path, names: tuple[list[str], list[str]]
) -> int:
    """Read promptbus's batch settings, start the emulator, compare on each broker, each run."""
    settings = await asyncio.to_thread(promptbus_settings)
    concurrency = batch_concurrency(settings, WORKERS)
    per_worker = math.ceil(concurrency / WORKERS)
    ideal = WORKERS * per_worker / (LATENCY_MS / 1000)
    machine = describe_machine(("Celery", celery.__version__), ("Kombu", kombu.__version__))
    print(f"machine: {machine}")
    print(f"promptbus batch settings: {settings}")
    print(
        f"promptbus runs {concurrency} items of a batch at once on {WORKERS} workers; the bare "
        f"group's {WORKERS} workers run {per_worker} threads each, one LangChain call per task, "
        f"emulator at {LATENCY_MS:g} ms: ideal {ideal:.0f} items/s"
    )
    async with client_session(16, HTTP_TIMEOUT_S) as session:
        _, emulator_url = await start_emulator_up(children, session, LATENCY_MS)
        bench = Bench(
            children,
            session,
            work_dir,
            emulator_url,
            os.urandom(4).hex(),
            args.items,
            per_worker,
            *names,
        )
        checks: list[Check] = []
        for number in range(1, args.runs + 1):
            for broker in args.brokers:
                checks += await compare(bench, broker, number, ideal)
    return report(checks)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--items", type=int, default=DEFAULT_ITEMS, help=f"items per batch ({DEFAULT_ITEMS})"
    )
    parser.add_argument(
        "--broker", default="rabbitmq,redis", help="comma-separated: rabbitmq, redis (both)"
    )
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help=f"comparisons per broker ({DEFAULT_RUNS})"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="keep every process's log and database here (default: a temp dir)",
    )
    parser.add_argument("--bare-worker", action="store_true", help="run only a bare worker")
    parser.add_argument("--worker-url", help="with --bare-worker: its broker URL")
    parser.add_argument("--suffix", help="with --bare-worker: its queues' name suffix")
    parser.add_argument("--concurrency", type=int, help="with --bare-worker: its threads")
    parser.add_argument("--emulator", help="with --bare-worker: the emulator it calls")
    args = parser.parse_args(argv)
    if args.bare_worker:
        if not (args.worker_url and args.suffix and args.concurrency and args.emulator):
            parser.error("--bare-worker needs --worker-url, --suffix, --concurrency, --emulator")
        return args
    args.brokers = [b.strip() for b in args.broker.split(",") if b.strip()]
    unknown = [b for b in args.brokers if b not in SHARED_BROKERS]
    if unknown or not args.brokers:
        parser.error(f"unknown brokers {unknown}; choose from {', '.join(SHARED_BROKERS)}")
    if args.items < 1 or args.runs < 1:
        parser.error("--items and --runs must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench, or a bare worker with --bare-worker."""
    args = parse_args(argv)
    if args.bare_worker:
        run_bare_group_worker(args.worker_url, args.suffix, args.concurrency, args.emulator)
        return 0
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    suffixes: list[str] = []
    prefixes: list[str] = []
    try:
        return run_bench(
            lambda children, work_dir: run(args, children, work_dir, (suffixes, prefixes)),
            STOP_GRACE_S,
            args.work_dir,
        )
    finally:
        clean_all(args.brokers, suffixes)
        clean_prefixes(prefixes)


if __name__ == "__main__":
    sys.exit(main())
