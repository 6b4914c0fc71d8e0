"""The machine's CPU, from /proc: what groups of processes used, the rest, and waiting for quiet."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from _closed_loop import process_cpu_s

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> tuple[float, float]:
    """CPU seconds the machine has been busy (all but idle and iowait), and of that in irqs.

    Interrupt time (hard and soft: loopback networking, mostly the load's own) is charged to
    no process, so it is kept apart from the rest.
    """
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) * _TICK_S, (ticks[5] + ticks[6]) * _TICK_S


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds each group used over an interval, and what the rest of the machine used."""

    seconds: dict[str, float]
    irq_s: float
    rest_s: float
    elapsed_s: float

    @property
    def rest_cores(self) -> float:
        """Cores the rest of the machine (other people's work, the kernel) kept busy."""
        return self.rest_s / self.elapsed_s

    def describe(self, requests: float) -> list[str]:
        """CPU ms per request of each group, and the cores each kept busy."""
        per_request = ", ".join(f"{g} {s * 1000 / requests:.2f}" for g, s in self.seconds.items())
        cores = ", ".join(f"{g} {s / self.elapsed_s:.2f}" for g, s in self.seconds.items())
        return [
            f"cpu ms/request: {per_request}",
            f"cores busy: {cores}, interrupts {self.irq_s / self.elapsed_s:.2f}, "
            f"the rest of the machine {self.rest_cores:.2f}",
        ]


class CpuWatch:
    """Reads the CPU of groups of processes, and of the machine, at a start and a stop."""

    def __init__(self, groups: Mapping[str, Sequence[int]]) -> None:
        self._groups = {name: list(pids) for name, pids in groups.items()}
        self._start = self._read()

    def _read(self) -> tuple[float, tuple[float, float], dict[str, float]]:
        used = {
            name: sum(process_cpu_s(pid) for pid in pids) for name, pids in self._groups.items()
        }
        return time.monotonic(), machine_busy_s(), used

    def stop(self) -> CpuUse:
        """What each group, the interrupts and the rest used since this watch began."""
        began, (busy_before, irq_before), before = self._start
        now, (busy_after, irq_after), after = self._read()
        seconds = {name: after[name] - before[name] for name in before}
        irq = irq_after - irq_before
        rest = max(0.0, busy_after - busy_before - irq - sum(seconds.values()))
        return CpuUse(seconds, irq, rest, max(now - began, 1e-9))


def _bench_cpu_s() -> float:
    """CPU seconds of the bench process and of the children it has reaped (wrk, once done)."""
    fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
    return sum(int(f) for f in fields[11:15]) * _TICK_S


class CpuWindow:
    """The CPU of named processes, the bench, interrupts and all other work over one load.

    Unlike CpuWatch it counts the bench itself, with the children it has waited for (wrk),
    so that "other work" is what runs on the machine besides the bench and its servers.
    """

    def __init__(self, pids: Mapping[str, int]) -> None:
        self._pids = dict(pids)
        self._start = self._read()

    def _read(self) -> tuple[float, tuple[float, float], dict[str, float]]:
        used = {name: process_cpu_s(pid) for name, pid in self._pids.items()}
        used["bench"] = _bench_cpu_s()
        return time.monotonic(), machine_busy_s(), used

    def describe(self, requests: int, under_test: str) -> tuple[str, float]:
        """A line of the cores each kept busy since the window opened; `under_test`'s CPU ms
        per request."""
        began, (busy_before, irq_before), before = self._start
        now, (busy_after, irq_after), after = self._read()
        elapsed = max(now - began, 1e-9)
        used = {name: after[name] - before[name] for name in before}
        irq = irq_after - irq_before
        other = max(0.0, busy_after - busy_before - irq - sum(used.values()))
        cores = ", ".join(f"{name} {s / elapsed:.2f}" for name, s in used.items())
        per_request = used[under_test] * 1000 / max(requests, 1)
        line = (
            f"    cores busy: {cores}, interrupts {irq / elapsed:.2f}, other work "
            f"{other / elapsed:.2f}; {under_test} {per_request:.2f} ms of CPU per request"
        )
        return line, per_request


async def wait_quiet(max_cores: float, timeout_s: float, sample_s: float = 1.0) -> float:
    """Wait until the machine keeps at most `max_cores` busy over a sample; the last reading."""
    deadline = time.monotonic() + timeout_s
    while True:
        before, _ = machine_busy_s()
        await asyncio.sleep(sample_s)
        busy = (machine_busy_s()[0] - before) / sample_s
        if busy <= max_cores or time.monotonic() >= deadline:
            return busy
