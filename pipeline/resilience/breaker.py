"""A circuit breaker per deployment, in process: skip a deployment that keeps failing.

Closed, a deployment takes every call. `failures` failures within `window_s` (a moving
window, no success in between) open it: calls are refused for `cooldown_s`. Then it is
half-open: exactly one call at a time is let through as a probe. A probe that succeeds
closes the circuit; one that fails opens it for another cooldown; one that ends neither
way (cancelled, or an error that says nothing about the deployment) must be `release`d
so that the next call may probe. Every call `allow` lets through should therefore end in
`success`, `failure` or `release`, or a half-open circuit stays closed to new probes.

Not thread-safe: one breaker serves one event loop (a process's calls run on one loop).
`on_change` hears each state a circuit enters (for the metrics), as it enters it.
"""

import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import structlog

log = structlog.get_logger("promptbus.breaker")

State = Literal["closed", "open", "half_open"]
StateListener = Callable[[str, State], None]


class _Circuit:
    """One key's recent failures, and when an open circuit may probe again."""

    __slots__ = ("failures", "probing", "retry_at")

    def __init__(self, failures: int) -> None:
        self.failures: deque[float] = deque(maxlen=failures)
        self.retry_at: float | None = None  # None: closed
        self.probing = False


class CircuitBreaker:
    """Counts failures per key and refuses calls to a key whose circuit is open."""

    def __init__(
        self,
        *,
        failures: int,
        window_s: float,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: StateListener | None = None,
    ) -> None:
        if failures < 1:
            raise ValueError(f"failures must be at least 1, not {failures}")
        self.failures = failures
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self._on_change = on_change

    def allow(self, key: str) -> bool:
        """Whether a call to `key` may go ahead now (half-open: as the one probe)."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.retry_at is None:
            return True
        if self._clock() < circuit.retry_at or circuit.probing:
            return False
        circuit.probing = True
        log.info("breaker_probing", deployment=key)
        self._changed(key, "half_open")
        return True

    def success(self, key: str) -> None:
        """A call to `key` succeeded: close the circuit and forget its failures."""
        circuit = self._circuits.get(key)
        if circuit is None:
            return
        if circuit.retry_at is not None:
            log.info("breaker_closed", deployment=key)
            self._changed(key, "closed")
        circuit.failures.clear()
        circuit.retry_at = None
        circuit.probing = False

    def failure(self, key: str) -> None:
        """A call to `key` failed: count it; enough of them, or a failed probe, open the circuit."""
        now = self._clock()
        circuit = self._circuits.setdefault(key, _Circuit(self.failures))
        if circuit.retry_at is not None:
            if circuit.probing or now >= circuit.retry_at:
                # The probe failed (or a call from before the circuit opened did, after
                # the cooldown): another cooldown either way.
                circuit.probing = False
                circuit.retry_at = now + self.cooldown_s
                log.warning("breaker_reopened", deployment=key, cooldown_s=self.cooldown_s)
                self._changed(key, "open")
            # Otherwise a call started before it opened: the cooldown already runs.
            return
        circuit.failures.append(now)
        _forget_before(circuit.failures, now - self.window_s)
        if len(circuit.failures) >= self.failures:
            circuit.retry_at = now + self.cooldown_s
            log.warning(
                "breaker_opened",
                deployment=key,
                failures=len(circuit.failures),
                window_s=self.window_s,
                cooldown_s=self.cooldown_s,
            )
            self._changed(key, "open")

    def _changed(self, key: str, state: State) -> None:
        if self._on_change is not None:
            self._on_change(key, state)

    def release(self, key: str) -> None:
        """A call to `key` ended without saying whether it works: free the probe slot."""
        circuit = self._circuits.get(key)
        if circuit is not None:
            circuit.probing = False

    def state(self, key: str) -> State:
        """`closed`, `open` (refusing calls) or `half_open` (a probe may go, or is out)."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.retry_at is None:
            return "closed"
        return "open" if self._clock() < circuit.retry_at else "half_open"

    def retry_in(self, key: str) -> float:
        """Seconds until an open circuit lets a probe through; 0.0 if it is not open."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.retry_at is None:
            return 0.0
        return max(0.0, circuit.retry_at - self._clock())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per key: state, failures within the window, and seconds until a probe may go."""
        cutoff = self._clock() - self.window_s
        return {
            key: {
                "state": self.state(key),
                "failures": sum(1 for at in circuit.failures if at > cutoff),
                "retry_in": round(self.retry_in(key), 3),
            }
            for key, circuit in self._circuits.items()
        }


def _forget_before(times: deque[float], cutoff: float) -> None:
    while times and times[0] <= cutoff:
        times.popleft()
