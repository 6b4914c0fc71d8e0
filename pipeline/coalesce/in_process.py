"""Single-flight: identical requests in flight share one upstream call."""

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Flight(Generic[T]):
    task: asyncio.Task[T]
    waiters: int = 0


class SingleFlight(Generic[T]):
    """Runs one call per key at a time; callers that arrive meanwhile share its result.

    The call runs in its own task, so a caller that goes away does not cancel the
    call for the others; the call is cancelled only when every caller has gone.
    """

    def __init__(self) -> None:
        self._flights: dict[str, _Flight[T]] = {}

    def in_flight(self) -> int:
        """How many distinct calls are running."""
        return len(self._flights)

    async def run(
        self, key: str, call: Callable[[], Awaitable[T]], *, wait_s: float
    ) -> tuple[T, bool]:
        """The call's result and whether this caller shared another caller's call."""
        flight = self._flights.get(key)
        shared = flight is not None
        if flight is None:
            flight = _Flight(asyncio.ensure_future(call()))
            self._flights[key] = flight
            flight.task.add_done_callback(functools.partial(self._land, key, flight))
        flight.waiters += 1
        try:
            async with asyncio.timeout(wait_s):
                return await asyncio.shield(flight.task), shared
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                flight.task.cancel()

    def _land(self, key: str, flight: "_Flight[T]", _task: "asyncio.Task[T]") -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.task.cancelled():
            # Retrieve the exception so an error nobody awaited is not logged as lost.
            flight.task.exception()
