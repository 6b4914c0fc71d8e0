"""Streamed answers as server-sent events, paced, cut short or failed as directives ask."""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from pipeline.emulator.calls import STATS_KEY
from pipeline.emulator.directives import Directives


@dataclass(frozen=True)
class StreamPlan:
    """The events a stream sends, in order, and how it ends."""

    events: tuple[bytes, ...]
    # True: the connection is closed after the events, the HTTP body left incomplete.
    cut: bool = False
    # True: the stream ends in an error event or a cut (counted in /stats errors).
    failed: bool = False


def plan_stream(
    opening: Sequence[bytes],
    content: Sequence[bytes],
    closing: Sequence[bytes],
    directives: Directives,
    error_event: bytes,
) -> StreamPlan:
    """Lay out a stream: opening events, content chunks, closing events (finish, usage).

    A cut or stream_error directive stops it after that many content chunks: a cut
    drops the connection there, a stream error sends the error event and ends cleanly.
    """
    stop = directives.stops_after
    if stop is None:
        return StreamPlan((*opening, *content, *closing))
    sent = (*opening, *content[:stop])
    if directives.stream_error is not None:
        return StreamPlan((*sent, error_event), failed=True)
    return StreamPlan(sent, cut=True, failed=True)


async def send_stream(
    request: web.Request, plan: StreamPlan, delay_ms: float
) -> web.StreamResponse:
    """Send the planned events as text/event-stream, delay_ms apart."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    if plan.failed:
        request.app[STATS_KEY].errors += 1
    for index, event in enumerate(plan.events):
        if index and delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        await response.write(event)
    if plan.cut:
        # Closing (not aborting) flushes what was written, then ends the connection
        # without the chunked body's last chunk; aiohttp's own write_eof then fails
        # quietly on the closed transport.
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response
