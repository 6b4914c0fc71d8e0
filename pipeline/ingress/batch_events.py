"""GET /v1/batches/{id}/events: a batch's progress as SSE, ending with its end.

The batch record is in the database, so any ingress serves the stream, whichever workers
run the batch: it is read every `POLL_S` and each change of status or counts is an event
(`batch.progress`, data: the Batch object), the last named for the end (`batch.completed`,
`batch.failed`, `batch.expired`, `batch.cancelled`). Bounded by `SSE_MAX_S`.
"""

import asyncio
import contextlib
import time
from typing import Final

import orjson
from aiohttp import web

from pipeline.batches.shapes import batch_object
from pipeline.db.batch_tables import BatchRecord
from pipeline.errors import NotFound
from pipeline.ingress.files import BATCH_STORE, openai_errors
from pipeline.ingress.principal import principal_of
from pipeline.ingress.sse import event
from pipeline.ingress.stream_slots import STREAM_SLOTS
from schemas.batches import FINAL_STATUSES, BatchStatus

POLL_S: Final = 0.5
SSE_MAX_S: Final = 600.0
PING_S: Final = 15.0


@openai_errors
async def get_batch_events(request: web.Request) -> web.StreamResponse:
    """The batch's progress as SSE, until it ends (or SSE_MAX_S)."""
    store = request.app[BATCH_STORE]
    batch_id, tenant = request.match_info["batch_id"], principal_of(request).tenant
    batch = await store.batch(batch_id, tenant)
    if batch is None:
        raise NotFound(f"no batch {batch_id!r}", field="batch_id")
    with request.app[STREAM_SLOTS].hold(tenant):
        return await _send_events(request, batch)


async def _send_events(request: web.Request, batch: BatchRecord | None) -> web.StreamResponse:
    store = request.app[BATCH_STORE]
    batch_id, tenant = request.match_info["batch_id"], principal_of(request).tenant
    stream = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await stream.prepare(request)
    seen: tuple[str, int, int] | None = None
    sent_at = time.monotonic()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SSE_MAX_S):
            while batch is not None:
                now = (batch.status, batch.completed, batch.failed)
                final = BatchStatus(batch.status) in FINAL_STATUSES
                if now != seen:
                    name = f"batch.{batch.status}" if final else "batch.progress"
                    await stream.write(event(name, orjson.dumps(batch_object(batch))))
                    seen, sent_at = now, time.monotonic()
                elif time.monotonic() - sent_at >= PING_S:
                    await stream.write(b": ping\n\n")
                    sent_at = time.monotonic()
                if final:
                    break
                await asyncio.sleep(POLL_S)
                batch = await store.batch(batch_id, tenant)
    await stream.write_eof()
    return stream
