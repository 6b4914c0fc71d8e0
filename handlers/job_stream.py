"""A job's generate step, and the pump that sends a streaming job's deltas out as they come.

The provider hands each delta to `DeltaPump.push`, a plain call that never waits: the delta
joins a small buffer, merged into the last one when the buffer is full, so that no text is
dropped and the generation never blocks. The pump's own task takes the deltas out in order,
numbers them, and hands each to the job's delta feed and to the bus at once. A side that
fails (Redis, the broker) is given up for the rest of the run, with a warning: deltas are a
courtesy to readers, the job's completion event is the record. When the generation ends,
answered or not, the pump sends what is left and ends the run in the feed.
"""

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Final

import structlog

from handlers.context import StageContext
from handlers.generate import generate
from pipeline.transient import TRANSIENT
from schemas import CompletionDelta, StageEnvelope

log = structlog.get_logger("promptbus.stream")

# Deltas waiting for the pump; past this many, a new one is merged into the last.
BUFFER: Final = 64
# How long the end of a generation waits for the pump to send what is left.
CLOSE_S: Final = 10.0


async def generate_job(envelope: StageEnvelope, ctx: StageContext) -> StageEnvelope:
    """A job's generate step: a job that asked for `stream` has its deltas sent as they come.

    Each run of the step is a new run of the job's feed (a re-run after a crash or a
    deferral too), so a reader can tell its deltas, which start again at 0, from the last.
    """
    if not envelope.request.stream or envelope.job_id is None:
        return await generate(envelope, ctx)
    pump = DeltaPump(ctx, envelope, await ctx.deltas.open_run(envelope.job_id))
    pump.start()
    answered = False
    try:
        generated = await generate(envelope, ctx, on_delta=pump.push)
        answered = True
        return generated
    finally:
        await pump.close(answered=answered)


class DeltaPump:
    """Numbers one run's deltas and sends each to the job's feed and the bus, in order."""

    def __init__(
        self,
        ctx: StageContext,
        envelope: StageEnvelope,
        run: int,
        *,
        buffer: int = BUFFER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if envelope.job_id is None:
            raise ValueError("only a job's deltas are pumped")
        job_id = envelope.job_id
        self._ctx = ctx
        self._job_id = job_id
        self._run = run
        self._correlation_id = envelope.correlation_id or job_id
        self._tenant = envelope.tenant
        self._buffer = buffer
        self._clock = clock
        self._pending: deque[str] = deque()
        self._wake = asyncio.Event()
        self._index = 0
        self._closing = False
        self._answered = False
        self._to_feed = True
        self._to_bus = True
        self._task: asyncio.Task[None] | None = None

    @property
    def sent(self) -> int:
        """How many deltas the pump has numbered and sent so far."""
        return self._index

    def start(self) -> None:
        """Start the pump's task on the running loop."""
        self._task = asyncio.create_task(self._pump(), name=f"delta-pump-{self._job_id}")

    def push(self, text: str) -> None:
        """Hand over one delta; never waits (merged into the last one when the buffer is full)."""
        if not text:
            return
        if len(self._pending) >= self._buffer:
            self._pending[-1] += text
        else:
            self._pending.append(text)
        self._wake.set()

    async def close(self, *, answered: bool) -> None:
        """Send what is left, then the run's end marker, within `CLOSE_S`."""
        self._answered, self._closing = answered, True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._task, CLOSE_S)
        except TimeoutError:
            log.warning(
                "delta pump did not finish in time; the rest of the run's deltas are dropped",
                job_id=self._job_id,
                run=self._run,
                left=len(self._pending),
            )
        except Exception:
            # A bug in the pump costs the readers their deltas, not the job its answer.
            log.exception("delta pump failed", job_id=self._job_id, run=self._run)

    async def _pump(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    break
                self._wake.clear()
                await self._wake.wait()
                continue
            delta = CompletionDelta(
                job_id=self._job_id,
                correlation_id=self._correlation_id,
                tenant=self._tenant,
                run=self._run,
                index=self._index,
                text=self._pending.popleft(),
                created=self._clock(),
            )
            self._index += 1
            await asyncio.gather(self._feed(delta), self._bus(delta))
        if self._to_feed:
            try:
                await self._ctx.deltas.end_run(self._job_id, self._run, answered=self._answered)
            except TRANSIENT as exc:
                self._failed("feed", exc)

    async def _feed(self, delta: CompletionDelta) -> None:
        if self._to_feed:
            try:
                await self._ctx.deltas.append(delta)
            except TRANSIENT as exc:
                self._to_feed = False
                self._failed("feed", exc)

    async def _bus(self, delta: CompletionDelta) -> None:
        if self._to_bus:
            try:
                await self._ctx.events.publish_delta(delta)
            except TRANSIENT as exc:
                self._to_bus = False
                self._failed("bus", exc)

    def _failed(self, side: str, exc: BaseException) -> None:
        log.warning(
            f"deltas stop going to the {side} for the rest of this run",
            job_id=self._job_id,
            run=self._run,
            error=f"{type(exc).__name__}: {exc}",
        )
