"""GET /v1/jobs/{id}/events: a job's state changes as SSE and, for a streaming job, its deltas.

Two sources are merged: the job store's watch of the record (one event per state) and, when
the job asked for `stream`, its delta feed, read from the first entry on (a late reader gets
the deltas so far, then the rest live). Whichever process generates the job, the feed is
where its deltas are, so any ingress can serve the stream. The stream ends after the final
state, once every delta the feed holds by then has been sent: a job's generation ends its
run in the feed before the job can end, so none comes after the final state.

A slow reader holds up only itself: the worker writes to the feed and the store without
waiting for anyone, and this reader has at most one page of deltas and the latest states
in hand while its socket drains.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Final

import orjson
import structlog
from aiohttp import web

from pipeline.ingress.jobs import own_job
from pipeline.ingress.keys import SERVICES
from pipeline.ingress.principal import principal_of
from pipeline.ingress.sse import event
from pipeline.ingress.stream_slots import STREAM_SLOTS
from pipeline.jobs.deltas import MAX_WAIT_S, START, DeltaFeed, FeedPage
from pipeline.jobs.store import JobStore
from pipeline.transient import TRANSIENT
from schemas import CompletionDelta
from schemas.jobs import Job

log = structlog.get_logger("promptbus.sse")

SSE_MAX_S: Final = 600.0
SSE_PING_S: Final = 15.0
# Deltas read from the feed at a time: the most this reader holds while its socket drains.
DELTA_PAGE: Final = 256
_PING: Final = b": ping\n\n"


async def get_job_events(request: web.Request) -> web.StreamResponse:
    """The job's state changes (and a streaming job's deltas) as SSE, ending after the last."""
    ctx = request.app[SERVICES].ctx
    job_id = request.match_info["job_id"]
    job = await own_job(request, ctx.jobs, job_id)
    with request.app[STREAM_SLOTS].hold(principal_of(request).tenant):
        return await _send_events(request, job)


async def _send_events(request: web.Request, job: Job) -> web.StreamResponse:
    ctx = request.app[SERVICES].ctx
    stream = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await stream.prepare(request)
    feed = ctx.deltas if job.request is not None and job.request.stream else None
    with contextlib.suppress(TimeoutError):
        async with (
            asyncio.timeout(SSE_MAX_S),
            contextlib.aclosing(job_events(ctx.jobs, feed, job.id)) as chunks,
        ):
            async for chunk in chunks:
                await stream.write(chunk)
    await stream.write_eof()
    return stream


async def job_events(
    jobs: JobStore, feed: DeltaFeed | None, job_id: str
) -> AsyncGenerator[bytes, None]:
    """The SSE events of one job: its states, its deltas if `feed`, and pings when quiet."""
    changes = jobs.watch(job_id)
    cursor = START
    # One pending read of each source, kept across pings: cancelling the watch's would end it.
    state_read: asyncio.Future[Job] | None = None
    delta_read: asyncio.Future[FeedPage] | None = None
    sent_at = time.monotonic()
    try:
        while True:
            state_read = state_read or asyncio.ensure_future(anext(changes))
            if feed is not None and delta_read is None:
                delta_read = asyncio.ensure_future(
                    feed.read(job_id, cursor, wait_s=MAX_WAIT_S, limit=DELTA_PAGE)
                )
            waiting = {read for read in (state_read, delta_read) if read is not None}
            quiet_s = SSE_PING_S - (time.monotonic() - sent_at)
            done, _ = await asyncio.wait(
                waiting, timeout=max(quiet_s, 0), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                sent_at = time.monotonic()
                yield _PING
                continue
            job, wrote = None, False
            if state_read in done:
                finished, state_read = state_read, None
                if finished.exception() is not None:
                    return  # the job is gone (expired), or the store failed
                job = finished.result()
                if not job.finished:
                    yield _state(job)
                    wrote = True
            if delta_read is not None and delta_read in done:
                read, delta_read = delta_read, None
                page = _page_or_none(read, job_id)
                if page is None:
                    feed = None  # the feed failed: the states go on without deltas
                elif page.entries:
                    cursor = page.cursor
                    if chunk := _deltas(page):
                        yield chunk
                        wrote = True
            if job is not None and job.finished:
                if feed is not None:
                    await _cancel(delta_read)
                    delta_read = None
                    async for chunk in _rest(feed, job_id, cursor):
                        yield chunk
                yield _state(job)
                return
            if wrote:
                sent_at = time.monotonic()
    finally:
        await _cancel(state_read)
        await _cancel(delta_read)
        await changes.aclose()


async def _rest(feed: DeltaFeed, job_id: str, cursor: str) -> AsyncIterator[bytes]:
    """What the feed holds after `cursor` now, a page at a time, without waiting for more."""
    while True:
        try:
            page = await feed.read(job_id, cursor, limit=DELTA_PAGE)
        except TRANSIENT as exc:
            log.warning("delta feed failed", job_id=job_id, error=f"{type(exc).__name__}: {exc}")
            return
        cursor = page.cursor
        if chunk := _deltas(page):
            yield chunk
        if len(page.entries) < DELTA_PAGE:
            return


def _page_or_none(read: "asyncio.Future[FeedPage]", job_id: str) -> FeedPage | None:
    failure = read.exception()
    if failure is None:
        return read.result()
    log.warning(
        "delta feed failed; the stream goes on with states only",
        job_id=job_id,
        error=f"{type(failure).__name__}: {failure}",
    )
    return None


def _state(job: Job) -> bytes:
    return event(job.state.value, orjson.dumps(job.public()))


def _deltas(page: FeedPage) -> bytes:
    """The page's deltas as `delta` events (the bus event's JSON); end markers are not sent."""
    return b"".join(
        event("delta", entry.model_dump_json(exclude_none=True).encode())
        for entry in page.entries
        if isinstance(entry, CompletionDelta)
    )


async def _cancel(read: "asyncio.Future[Any] | None") -> None:
    """Cancel a pending read and wait until it has let go (a generator is busy inside it)."""
    if read is None:
        return
    read.cancel()
    await asyncio.wait({read})
    if not read.cancelled():
        read.exception()  # it ended first: its outcome is not wanted, nor reported as lost
