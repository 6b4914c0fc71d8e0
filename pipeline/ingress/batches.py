"""OpenAI's Batches API: create (from a file or inline), read, list, cancel.

A batch's input is checked while it is created (pipeline.batches.validation, and for a
provider batch pipeline.batches.provider_check): a fault fails it at once, naming the
line, and nothing is queued. A good one is stored with its items and started: as a Celery
group of lanes (pipeline.batches.execution), or with `"mode": "provider"` as the first
step of its Gemini batch job (pipeline.batches.provider).
"""

import asyncio
from datetime import timedelta
from typing import Annotated, Any, Final, Literal

import orjson
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from handlers import arrive
from pipeline.batches import BatchStore, finalize
from pipeline.batches.ids import new_id
from pipeline.batches.provider_check import check_provider
from pipeline.batches.provider_state import PROVIDER_KEY, provider_state
from pipeline.batches.shapes import batch_object
from pipeline.batches.store import CANCELLED, utcnow
from pipeline.batches.validation import ENDPOINTS, Checked, Limits, check_file, check_inline
from pipeline.bus.celery_app import batch_lanes, provider_step
from pipeline.db.batch_tables import BatchRecord
from pipeline.errors import (
    BrokerUnavailable,
    Conflict,
    InvalidQuery,
    NotFound,
    PromptbusError,
    ValidationFailed,
)
from pipeline.ingress.batch_events import get_batch_events
from pipeline.ingress.body import read_json, validation_failed
from pipeline.ingress.compat.openai.requests import read_request, to_generate_request
from pipeline.ingress.files import BATCH_NOTICES, BATCH_STORE, openai_errors
from pipeline.ingress.keys import SERVICES, SETTINGS
from pipeline.ingress.permit import check_model
from pipeline.ingress.principal import principal_of
from pipeline.services import Services
from schemas import GenerateRequest
from schemas.batches import BatchStatus

log = structlog.get_logger("promptbus.batches")

_LIST_DEFAULT: Final = 20
_LIST_MAX: Final = 100

MetadataKey = Annotated[str, StringConstraints(max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=512)]


class InlineRequest(BaseModel):
    """One request of an inline batch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    custom_id: str
    body: dict[str, Any]


class BatchCreate(BaseModel):
    """`POST /v1/batches`: OpenAI's fields (newer ones ignored), plus `requests` and `mode`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    input_file_id: str | None = Field(default=None, max_length=64)
    requests: list[InlineRequest] | None = None
    endpoint: Literal["/v1/chat/completions", "/v1/generate"]
    completion_window: Literal["24h"]
    metadata: dict[MetadataKey, MetadataValue] | None = Field(default=None, max_length=16)
    mode: Literal["gateway", "provider"] = "gateway"


def _reader(request: web.Request) -> Any:
    """How this request's batch lines become requests: parsed, templated, model checked."""
    services = request.app[SERVICES]
    catalog, templates = services.ctx.catalog, services.ctx.templates

    def read(endpoint: str, body: object) -> GenerateRequest:
        if endpoint == ENDPOINTS[0]:
            parsed = to_generate_request(read_request(body))
        else:
            try:
                parsed = GenerateRequest.model_validate(body)
            except ValidationError as exc:
                raise validation_failed(exc) from exc
        parsed = arrive(parsed, templates)
        catalog.route(parsed.model)  # UnknownModel
        check_model(request, parsed.model)
        # A batch item is answered whole: its line holds the whole answer.
        return parsed.model_copy(update={"stream": False}) if parsed.stream else parsed

    return read


async def _checked(request: web.Request, create: BatchCreate, store: BatchStore) -> Checked:
    checked = await _read_input(request, create, store)
    if create.mode == "provider" and not checked.errors:
        catalog = request.app[SERVICES].ctx.catalog
        await asyncio.to_thread(check_provider, checked, catalog)
    return checked


async def _read_input(request: web.Request, create: BatchCreate, store: BatchStore) -> Checked:
    settings = request.app[SETTINGS]
    read = _reader(request)
    if create.requests is not None:
        raw = [item.model_dump() for item in create.requests]
        return check_inline(raw, create.endpoint, settings.batch_inline_max, read)
    assert create.input_file_id is not None
    content = await store.content(principal_of(request).tenant, create.input_file_id)
    if content is None:
        raise NotFound(f"no file {create.input_file_id!r}", field="input_file_id")
    limits = Limits(settings.batch_file_max_bytes, settings.batch_max_lines)
    # Reading 50,000 lines takes a while: off the loop.
    return await asyncio.to_thread(check_file, content, create.endpoint, limits, read)


def _create(raw: object) -> BatchCreate:
    try:
        create = BatchCreate.model_validate(raw)
    except ValidationError as exc:
        raise validation_failed(exc) from exc
    if (create.input_file_id is None) == (create.requests is None):
        raise ValidationFailed("give either input_file_id or requests", field="input_file_id")
    if create.metadata is not None and PROVIDER_KEY in create.metadata:
        raise ValidationFailed(f"metadata key {PROVIDER_KEY!r} is promptbus's", field="metadata")
    return create


@openai_errors
async def post_batch(request: web.Request) -> web.StreamResponse:
    """`POST /v1/batches`: check the input, store the batch, start its lanes."""
    settings = request.app[SETTINGS]
    # An inline batch is a JSON body like any: PROMPTBUS_MAX_BODY_BYTES bounds it.
    create = _create(await read_json(request, settings.max_body_bytes))
    store = request.app[BATCH_STORE]
    checked = await _checked(request, create, store)
    principal = principal_of(request)
    now = utcnow()
    batch = BatchRecord(
        id=new_id("batch_"),
        tenant=principal.tenant,
        key_id=principal.key_id,
        mode=create.mode,
        endpoint=create.endpoint,
        input_file_id=create.input_file_id,
        completion_window=create.completion_window,
        metadata_=create.metadata,
        total=len(checked.items),
        completed=0,
        failed=0,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.batch_window_s),
    )
    if checked.errors:
        batch.status, batch.failed_at = BatchStatus.FAILED.value, now
        batch.errors = {"object": "list", "data": checked.errors}
        batch.total = 0
        await store.add_batch(batch, [])
        await request.app[BATCH_NOTICES].ended(batch)
        return _json(batch_object(batch))
    batch.status, batch.in_progress_at = BatchStatus.IN_PROGRESS.value, now
    await store.add_batch(batch, checked.items)
    try:
        await start(request.app[SERVICES], batch)
    except BrokerUnavailable as exc:
        # Not started: the batch says so rather than waiting out its window.
        error = {"code": "broker_unavailable", "message": exc.message, "line": None, "param": None}
        errors = {"object": "list", "data": [error]}
        if await store.move(batch.id, BatchStatus.FAILED, [BatchStatus.IN_PROGRESS], errors=errors):
            failed = await store.batch(batch.id)
            if failed is not None:
                await request.app[BATCH_NOTICES].ended(failed)
        raise
    return _json(batch_object(batch))


async def start(services: Services, batch: BatchRecord) -> None:
    """Hand a stored batch to its runner: a group of gateway lanes, or the first step of a
    provider batch (its submit to Gemini's Batch API)."""
    if batch.mode == "provider":
        await services.publisher.publish_chain(provider_step(services.celery, batch.id, 0))
        return
    settings = services.settings
    chunks = -(-batch.total // settings.batch_chunk_size)
    lanes = batch_lanes(services.celery, batch.id, range(min(settings.batch_slots, chunks)))
    await services.publisher.publish_chain(lanes)


def _json(body: object) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def _own(request: web.Request) -> BatchRecord:
    batch_id = request.match_info["batch_id"]
    batch = await request.app[BATCH_STORE].batch(batch_id, principal_of(request).tenant)
    if batch is None:
        raise NotFound(f"no batch {batch_id!r}", field="batch_id")
    return batch


@openai_errors
async def get_batch(request: web.Request) -> web.StreamResponse:
    """`GET /v1/batches/{id}`."""
    return _json(batch_object(await _own(request)))


@openai_errors
async def list_batches(request: web.Request) -> web.StreamResponse:
    """`GET /v1/batches?after=&limit=`: newest first, a cursor page."""
    after = request.query.get("after")
    try:
        limit = int(request.query.get("limit", _LIST_DEFAULT))
    except ValueError:
        raise InvalidQuery("limit must be a whole number") from None
    if not 1 <= limit <= _LIST_MAX:
        raise InvalidQuery(f"limit must be from 1 to {_LIST_MAX}")
    found, more = await request.app[BATCH_STORE].batches(
        principal_of(request).tenant, after=after, limit=limit
    )
    data = [batch_object(batch) for batch in found]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    page = {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more}
    return _json(page)


@openai_errors
async def cancel_batch(request: web.Request) -> web.StreamResponse:
    """`POST /v1/batches/{id}/cancel`: pending items end `batch_cancelled`; finished stay."""
    batch = await _own(request)
    store = request.app[BATCH_STORE]
    running = [BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS]
    if await store.move(batch.id, BatchStatus.CANCELLING, running):
        if batch.mode == "provider":
            await _cancel_provider(request.app[SERVICES], batch)
        else:
            await store.close_pending(batch.id, CANCELLED)
            await finalize(store, batch.id, request.app[BATCH_NOTICES].ended)
    elif batch.status not in (BatchStatus.CANCELLING, BatchStatus.CANCELLED):
        raise _cannot_cancel(batch)
    return _json(batch_object(await _own(request)))


async def _cancel_provider(services: Services, batch: BatchRecord) -> None:
    """A step now, which cancels the provider's job and keeps what it answered."""
    step = provider_step(services.celery, batch.id, provider_state(batch).polls)
    try:
        await services.publisher.publish_chain(step)
    except BrokerUnavailable as exc:
        # The batch stays cancelling: the sweeper queues the step once the broker is back.
        log.warning("provider batch cancel not queued", batch_id=batch.id, error=exc.message)


def _cannot_cancel(batch: BatchRecord) -> PromptbusError:
    return Conflict(f"batch {batch.id!r} is {batch.status} and cannot be cancelled")


def add_routes(app: web.Application) -> None:
    """Serve the Batches routes on `app`."""
    app.router.add_post("/v1/batches", post_batch)
    app.router.add_get("/v1/batches", list_batches)
    app.router.add_get("/v1/batches/{batch_id}", get_batch)
    app.router.add_post("/v1/batches/{batch_id}/cancel", cancel_batch)
    app.router.add_get("/v1/batches/{batch_id}/events", get_batch_events)
