"""Single-flight for streams: identical streaming requests share one upstream stream, live.

Every caller of a key follows the same flight: the deltas so far, then each new one as it
arrives, then the answer (or the error). The upstream call runs in its own task, so the
caller that started it may hang up while the others read on; when the last caller has
gone the call is cancelled, and a cancelled call stores nothing.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog

from pipeline.errors import PromptbusError
from schemas import GenerateResponse

log = structlog.get_logger("promptbus.streams")

# How a flight's call runs: it pushes deltas into the flight and returns the answer.
Producer = Callable[["StreamFlight"], Awaitable[GenerateResponse]]


class StreamFlight:
    """One upstream stream as its callers see it: deltas so far, then how it ended."""

    def __init__(self) -> None:
        self.deltas: list[str] = []
        self.response: GenerateResponse | None = None
        self.error: PromptbusError | None = None
        self.listeners = 0
        self.task: asyncio.Task[None] | None = None
        # Set (and replaced) on every change, so each follower waits for the next one.
        self._changed = asyncio.Event()

    @property
    def done(self) -> bool:
        """Whether the stream has ended, with an answer or an error."""
        return self.response is not None or self.error is not None

    def push(self, delta: str) -> None:
        """Add a delta and wake every follower."""
        self.deltas.append(delta)
        self._wake()

    def finish(self, response: GenerateResponse | None, error: PromptbusError | None) -> None:
        """End the stream with its answer or its error."""
        self.response, self.error = response, error
        self._wake()

    async def started(self) -> None:
        """Wait for the first delta or the end, whichever comes first."""
        while not self.deltas and not self.done:
            await self._changed.wait()

    async def follow(self, start: int = 0) -> AsyncIterator[str]:
        """Every delta from `start` on, live; raises the stream's error if it failed."""
        index = start
        while True:
            if index < len(self.deltas):
                index += 1
                yield self.deltas[index - 1]
            elif self.error is not None:
                raise self.error
            elif self.response is not None:
                return
            else:
                await self._changed.wait()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


class StreamFlights:
    """The streams in flight in this process, by flight key."""

    def __init__(self) -> None:
        self._flights: dict[str, StreamFlight] = {}

    def in_flight(self) -> int:
        """How many distinct upstream streams are running."""
        return len(self._flights)

    @asynccontextmanager
    async def join(self, key: str, produce: Producer) -> AsyncIterator[tuple[StreamFlight, bool]]:
        """Follow the flight of `key`, starting it with `produce` if there is none.

        Yields the flight and whether it was shared (another caller started it).
        """
        flight = self._flights.get(key)
        shared = flight is not None
        if flight is None:
            flight = StreamFlight()
            self._flights[key] = flight
            flight.task = asyncio.create_task(self._run(key, flight, produce))
        flight.listeners += 1
        try:
            yield flight, shared
        finally:
            flight.listeners -= 1
            if flight.listeners == 0 and flight.task is not None and not flight.task.done():
                # Nobody is left to hear the answer: stop the upstream call; nothing is stored.
                flight.task.cancel()
                self._land(key, flight)

    async def _run(self, key: str, flight: StreamFlight, produce: Producer) -> None:
        try:
            response = await produce(flight)
        except PromptbusError as exc:
            flight.finish(None, exc)
        except Exception:
            log.exception("stream failed", flight=key)
            flight.finish(None, PromptbusError("internal error"))
        else:
            flight.finish(response, None)
        finally:
            self._land(key, flight)

    def _land(self, key: str, flight: StreamFlight) -> None:
        # A caller that arrives after the end starts afresh (and finds the cache, if stored).
        if self._flights.get(key) is flight:
            del self._flights[key]
