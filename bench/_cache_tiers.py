"""The scale bench's phase 2: a cache hit from Redis (L2) against one from memory (L1)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Final

import aiohttp
from _closed_loop import IN_FLIGHT, Result, show
from _common import (
    JSON_HEADERS,
    BenchError,
    Check,
    Child,
    Errors,
    Load,
    client_session,
    emulator_calls,
)
from _scale_bench import Bench

WARMUP_BODIES: Final = 256
HIT_CONNECTIONS: Final = 16


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
    async with client_session(connections, 30) as session:

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
        calls_before = await emulator_calls(bench.session, bench.emulator_url)
        l2 = Result(
            "B, L2 hit (Redis)", count, await each_once(b_generate, bodies, HIT_CONNECTIONS, "l2")
        )
        l1 = Result(
            "B, L1 hit (in-process)",
            count,
            await each_once(b_generate, bodies, HIT_CONNECTIONS, "l1"),
        )
        upstream = await emulator_calls(bench.session, bench.emulator_url) - calls_before
        if upstream:
            l1.load.errors.add(f"B made {upstream} emulator calls; every request should be a hit")
    finally:
        await bench.release(started, suffix, prefix)
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
