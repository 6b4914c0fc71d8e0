"""Load per deployment, in process: calls in flight and a moving average of latency.

The least-busy strategy reads `in_flight`, the lowest-latency one `latency`: an
exponentially weighted moving average of successful calls' latency (None until one has
been measured, which the router takes as "try it"). Failed calls free their slot but
leave the average alone: a fast error says nothing about how fast answers come.

Not thread-safe: one instance serves one event loop.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class DeploymentLoad:
    """Counts calls in flight per key and averages the latency of the successful ones."""

    def __init__(
        self, *, alpha: float = 0.3, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], not {alpha}")
        self.alpha = alpha
        self._clock = clock
        self._in_flight: dict[str, int] = {}
        self._latency: dict[str, float] = {}

    def start(self, key: str) -> None:
        """A call to `key` begins."""
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def end(self, key: str, latency_s: float | None) -> None:
        """A call to `key` ended: with its latency if it succeeded, None otherwise."""
        running = self._in_flight.get(key, 0)
        if running > 1:
            self._in_flight[key] = running - 1
        else:
            # Never below zero, even if a caller ends a call it did not start.
            self._in_flight.pop(key, None)
        if latency_s is None:
            return
        previous = self._latency.get(key)
        self._latency[key] = (
            latency_s if previous is None else previous + self.alpha * (latency_s - previous)
        )

    @contextmanager
    def track(self, key: str) -> Iterator[None]:
        """Count the block as a call to `key`; its latency counts only if it raises nothing."""
        self.start(key)
        started = self._clock()
        try:
            yield
        except BaseException:
            self.end(key, None)
            raise
        self.end(key, self._clock() - started)

    def in_flight(self, key: str) -> int:
        """Calls to `key` running now."""
        return self._in_flight.get(key, 0)

    def latency(self, key: str) -> float | None:
        """The moving average of `key`'s successful calls in seconds; None if none yet."""
        return self._latency.get(key)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per key seen: calls in flight and average latency, for logs and health checks."""
        keys = sorted(self._in_flight.keys() | self._latency.keys())
        return {
            key: {"in_flight": self.in_flight(key), "latency_s": self.latency(key)} for key in keys
        }
