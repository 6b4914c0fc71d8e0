"""Kombu's in-memory transport, woken by each message instead of polling for it.

Kombu's `memory://` consumer checks its queues, then sleeps a polling interval when they
are empty: a short interval spends CPU on every idle consumer thread (and their GIL
hand-offs slow the event loop), a long one adds itself to every hop of a job. Here every
change that can make a message deliverable (a put, an ack or reject that frees prefetch
room, a new consumer or QoS) wakes the waiting consumers at once; the polling interval is
left as the longest wait between checks, a safety net, not the latency. `interrupt_waits`
ends the waits early (as a timeout), so a stopping consumer loop sees its state at once.

Queues and exchanges are kombu's own memory transport's: a plain `memory://` connection in
the same process sees the same messages (its puts wake these consumers within the interval).
"""

import threading
from queue import Empty
from time import monotonic
from typing import Any, Final

from kombu.transport import TRANSPORT_ALIASES, memory

SCHEME: Final = "pbmemory"


class Changes:
    """A count of changes, and a way to wait until it moves past a value seen before."""

    def __init__(self) -> None:
        self._moved = threading.Condition()
        self._count = 0
        self._interrupts = 0

    @property
    def count(self) -> int:
        """How many changes so far."""
        return self._count

    @property
    def interrupts(self) -> int:
        """How many interruptions so far."""
        return self._interrupts

    def bump(self) -> None:
        """Record one change and wake every waiter."""
        with self._moved:
            self._count += 1
            self._moved.notify_all()

    def interrupt(self) -> None:
        """Wake every waiter and have its wait end as a timeout."""
        with self._moved:
            self._interrupts += 1
            self._count += 1
            self._moved.notify_all()

    def wait_past(self, seen: int, timeout_s: float) -> None:
        """Wait until the count is no longer `seen`, or `timeout_s` has passed."""
        with self._moved:
            self._moved.wait_for(lambda: self._count != seen, timeout_s)


CHANGES: Final = Changes()


class Channel(memory.Channel):
    """kombu's memory channel, announcing each change to waiting consumers."""

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        super()._put(queue, message, **kwargs)
        CHANGES.bump()

    def _put_fanout(
        self, exchange: str, message: Any, routing_key: str | None = None, **kwargs: Any
    ) -> None:
        super()._put_fanout(exchange, message, routing_key, **kwargs)
        CHANGES.bump()

    def basic_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        CHANGES.bump()

    def basic_reject(self, delivery_tag: int, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue)
        CHANGES.bump()

    def basic_consume(self, *args: Any, **kwargs: Any) -> Any:
        result = super().basic_consume(*args, **kwargs)
        CHANGES.bump()
        return result

    def basic_qos(self, *args: Any, **kwargs: Any) -> None:
        super().basic_qos(*args, **kwargs)
        CHANGES.bump()


class Transport(memory.Transport):
    """kombu's memory transport whose consumers wait for a change, not a polling interval."""

    Channel = Channel

    def drain_events(self, connection: Any, timeout: float | None = None, **_: Any) -> None:
        """Deliver one message, waiting for one up to `timeout` (socket.timeout after).

        An `interrupt_waits` ends the wait early as that timeout: Celery's synchronous loop
        checks whether it is stopping only between drains, each of up to 2 s.
        """
        started = monotonic()
        interrupts = CHANGES.interrupts
        while True:
            seen = CHANGES.count
            try:
                self.cycle.get(self._deliver, timeout=timeout)  # type: ignore[union-attr]
                return
            except Empty:
                pass
            wait_s = self.polling_interval or 1.0
            if timeout is not None:
                left_s = timeout - (monotonic() - started)
                if left_s <= 0:
                    raise TimeoutError()
                wait_s = min(wait_s, left_s)
            CHANGES.wait_past(seen, wait_s)
            if CHANGES.interrupts != interrupts:
                raise TimeoutError()


def interrupt_waits() -> None:
    """End every consumer's wait for a message now, as a timeout (its loop goes round)."""
    CHANGES.interrupt()


def register() -> None:
    """Make `pbmemory://` name this transport for kombu (and so for Celery)."""
    TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
