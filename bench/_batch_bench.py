"""The batch bench's parts both sides share: a side's figures, the run's names, promptbus's
batch settings, and waiting for a count to reach its end."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
from _common import REPO, BenchError, Children, child_env, emulator_calls
from _rss import PeakRss
from _scale_bench import WEBHOOK_SECRET

# The end is waited for until this long passes with no item finished (bounded, not timed).
STALL_S: Final = 120.0
POLL_S: Final = 0.25
# promptbus's settings that bound a batch's concurrency, read from pipeline/settings.py.
BATCH_SETTINGS: Final = (
    "batch_slots",
    "batch_tenant_slots",
    "batch_worker_slots",
    "batch_item_concurrency",
    "batch_chunk_size",
    "worker_concurrency",
    "worker_pool",
)


@dataclass(frozen=True)
class Side:
    """One side's run: items finished over the time, errors and peak memory."""

    label: str
    items: int
    elapsed_s: float
    errors: list[str]
    rss: PeakRss

    @property
    def rate(self) -> float:
        """Items per second."""
        return self.items / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def show(self, ideal: float) -> None:
        """The side's figures."""
        print(
            f"  {self.label}: {self.items} items in {self.elapsed_s:.1f} s = {self.rate:.1f} "
            f"items/s ({self.rate / ideal:.2f} of the ideal {ideal:.0f})"
        )
        print(f"    {self.rss.describe()}")
        for error in self.errors[:5]:
            print(f"    error: {error}")


@dataclass
class Bench:
    """What every phase shares."""

    children: Children
    session: aiohttp.ClientSession
    work_dir: Path
    emulator_url: str
    run_id: str
    items: int
    per_worker: int
    suffixes: list[str]
    prefixes: list[str]

    def new_names(self) -> tuple[str, str]:
        """A fresh bus suffix and Redis prefix, remembered for the clean-up."""
        tag = os.urandom(5).hex()
        suffix, prefix = f".bench-{tag}", f"pbbench-{tag}:"
        self.suffixes.append(suffix)
        self.prefixes.append(prefix)
        return suffix, prefix

    def prompts(self, label: str, count: int) -> list[str]:
        """`count` prompts of their own (no cache hit, no coalescing)."""
        return [f"batch bench {self.run_id} {label} {n}" for n in range(count)]

    async def calls(self) -> int:
        """The emulator's generate calls so far."""
        return await emulator_calls(self.session, self.emulator_url)


def promptbus_settings() -> dict[str, Any]:
    """promptbus's defaults of BATCH_SETTINGS (the bench cannot import the package it shadows)."""
    code = (
        "import json; from pipeline.settings import Settings; s = Settings(); "
        f"print(json.dumps({{k: getattr(s, k) for k in {list(BATCH_SETTINGS)!r}}}))"
    )
    env = child_env(PROMPTBUS_WEBHOOK_SECRET=WEBHOOK_SECRET)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise BenchError(f"reading promptbus's settings failed: {done.stderr[-500:]}")
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def batch_concurrency(settings: dict[str, Any], workers: int) -> int:
    """How many of one batch's items promptbus runs at once on `workers` workers."""
    per_worker_lanes = min(settings["batch_worker_slots"], settings["worker_concurrency"])
    lanes = min(settings["batch_slots"], settings["batch_tenant_slots"], workers * per_worker_lanes)
    return int(lanes * settings["batch_item_concurrency"])


async def wait_finished(count: Any, target: int, what: str) -> float:
    """Poll `count()` until it reaches `target`; the time it did. Fails after STALL_S of no move."""
    last_count, last_move = -1, time.monotonic()
    while True:
        now_count = await count()
        if now_count >= target:
            return time.perf_counter()
        if now_count != last_count:
            last_count, last_move = now_count, time.monotonic()
        elif time.monotonic() - last_move > STALL_S:
            raise BenchError(f"{what}: stuck at {now_count} of {target} for {STALL_S:g} s")
        await asyncio.sleep(POLL_S)
