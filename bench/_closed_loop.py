"""The closed loop both job benches use: slots that submit a job and await its completion."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from _broker import Completions, audit
from _common import Errors, Load

IN_FLIGHT: Final = 64
COMPLETION_TIMEOUT_S: Final = 60.0
DUPLICATE_GRACE_S: Final = 1.0

Submit = Callable[[int], Awaitable[str]]


@dataclass(frozen=True)
class Result:
    """What one measured run gave."""

    label: str
    jobs: int
    load: Load
    cpu: str = ""


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far by some processes, and the machine's busy and total ticks."""

    seconds: dict[str, float]
    busy: int
    total: int


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(pids: Mapping[str, int]) -> CpuSnapshot:
    """CPU used so far by `pids` (by name) and by the whole machine."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = ticks[3] + ticks[4]
    seconds = {name: process_cpu_s(pid) for name, pid in pids.items()}
    return CpuSnapshot(seconds, busy=sum(ticks) - idle, total=sum(ticks))


def describe_cpu(before: CpuSnapshot, after: CpuSnapshot, jobs: int) -> str:
    """CPU ms per job of each process between two snapshots, and how busy the machine was."""
    per_job = ", ".join(
        f"{name} {(after.seconds[name] - before.seconds[name]) * 1000 / jobs:.2f}"
        for name in before.seconds
    )
    total = after.total - before.total
    busy = 100 * (after.busy - before.busy) / total if total else math.nan
    return f"cpu ms/job: {per_job}; machine {busy:.0f}% busy ({os.cpu_count()} cores)"


async def closed_loop(
    label: str,
    count: int,
    submit: Submit,
    completions: Completions,
    pids: Mapping[str, int] | None = None,
) -> Result:
    """`count` jobs from IN_FLIGHT slots, each submitting one job and awaiting its completion."""
    numbers = iter(range(count))
    latencies: list[float] = []
    job_ids: list[str] = []
    errors = Errors()
    last_done = 0.0

    async def slot() -> None:
        nonlocal last_done
        for number in numbers:
            began = time.perf_counter()
            try:
                job_id = await submit(number)
            except Exception as exc:
                errors.add(f"submit failed: {type(exc).__name__}: {exc}")
                continue
            job_ids.append(job_id)
            done_at = await completions.wait(job_id, COMPLETION_TIMEOUT_S)
            if done_at is not None:
                latencies.append(done_at - began)
                last_done = max(last_done, done_at)

    pids = {"bench": os.getpid(), **(pids or {})}
    before = cpu_snapshot(pids)
    started = time.perf_counter()
    await asyncio.gather(*(slot() for _ in range(IN_FLIGHT)))
    cpu = describe_cpu(before, cpu_snapshot(pids), count)
    # A late duplicate would show up here.
    await asyncio.sleep(DUPLICATE_GRACE_S)
    audit(completions, job_ids, errors)
    return Result(label, count, Load.of(latencies, last_done - started, errors), cpu)


def show(result: Result, unit: str = "jobs/s") -> None:
    """Print one result as a table row, then its first errors."""
    load = result.load
    print(
        f"  {result.label:<22}{load.rate:>9.1f} {unit:<7}p50 {load.p50_ms:8.2f} ms   "
        f"p99 {load.p99_ms:8.2f} ms   completed {load.completed:>5}/{result.jobs:<5}   "
        f"errors {load.errors.count}"
    )
    if result.cpu:
        print(f"      {result.cpu}")
    load.errors.show()
