"""Slowing down key guessing: an address that sent too many bad keys waits a cool-down.

Counted per client address (the TCP peer's: behind a proxy, the proxy's), in a fixed window
that starts at an address's first failure; at `auth_failures_max` failures the address is
refused for `auth_cooldown_s`, whatever key it sends, so that a guess that happens to be
right cannot be told from a wrong one. The table is an LRU bounded by address count, per
process. A caller at another address is never affected.
"""

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.settings import Settings


@dataclass(slots=True)
class _Failures:
    window_start: float
    count: int
    blocked_until: float = 0.0


class AuthThrottle:
    """Failed authentications per client address, and which addresses must wait."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._max = settings.auth_failures_max
        self._window_s = settings.auth_failure_window_s
        self._cooldown_s = settings.auth_cooldown_s
        self._capacity = settings.auth_failure_max_addresses
        self._clock = clock
        self._by_address: OrderedDict[str, _Failures] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Whether bad keys are counted at all (`auth_failures_max` 0 turns it off)."""
        return self._max > 0

    def __len__(self) -> int:
        return len(self._by_address)

    @property
    def watching(self) -> bool:
        """Whether any address has failed lately (else no request needs a look-up)."""
        return bool(self._by_address)

    def wait_s(self, address: str) -> float | None:
        """Seconds `address` must still wait before it may try again; None if it need not."""
        held = self._by_address.get(address)
        if held is None or held.blocked_until == 0.0:
            return None
        left = held.blocked_until - self._clock()
        if left > 0:
            self._by_address.move_to_end(address)  # still trying: not the one to forget
            return left
        del self._by_address[address]  # cooled down: it starts afresh
        return None

    def failed(self, address: str) -> None:
        """Note a bad key from `address` (it may start its cool-down)."""
        if not self.enabled:
            return
        now = self._clock()
        held = self._by_address.get(address)
        if held is None or now - held.window_start >= self._window_s:
            held = _Failures(window_start=now, count=0)
            self._by_address[address] = held
        self._by_address.move_to_end(address)
        held.count += 1
        if held.count >= self._max:
            held.blocked_until = now + self._cooldown_s
        while len(self._by_address) > self._capacity:
            self._by_address.popitem(last=False)
