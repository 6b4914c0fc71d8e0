"""Peak resident memory of process trees, sampled from /proc while a load runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Final

_PROC: Final = Path("/proc")
SAMPLE_EVERY_S: Final = 0.5


def _parents() -> dict[int, int]:
    """Every process's parent pid."""
    parents: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            # The fields after the command name, which may hold spaces and parentheses.
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            parents[int(entry.name)] = int(fields[1])
    return parents


def _rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tree_rss_mib(root: int, parents: Mapping[int, int]) -> float:
    """The RSS of `root` and all its descendants (a prefork worker's children), in MiB."""
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    return sum(_rss_kib(pid) for pid in tree) / 1024


class PeakRss:
    """Samples the RSS of named process trees every half second; the peak of each, and of all."""

    def __init__(self, roots: Mapping[str, int]) -> None:
        self._roots = dict(roots)
        self.peaks = dict.fromkeys(roots, 0.0)
        self.peak_total = 0.0
        self.samples = 0
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        """One sample of every tree."""
        parents = _parents()
        total = 0.0
        for name, root in self._roots.items():
            rss = tree_rss_mib(root, parents)
            self.peaks[name] = max(self.peaks[name], rss)
            total += rss
        self.peak_total = max(self.peak_total, total)
        self.samples += 1

    async def _run(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def __aenter__(self) -> PeakRss:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sample()

    def describe(self) -> str:
        """The peaks, one figure per tree and the peak of their sum."""
        each = ", ".join(f"{name} {mib:.0f}" for name, mib in self.peaks.items())
        return f"peak RSS MiB: {each}; all together {self.peak_total:.0f} ({self.samples} samples)"
