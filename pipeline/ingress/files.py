"""OpenAI's Files API for batches: upload (`purpose=batch`), read, download, delete."""

from typing import Final

import orjson
from aiohttp import BodyPartReader, web

from pipeline.batches import BatchStore
from pipeline.batches.ids import new_id
from pipeline.batches.progress import BatchNotices
from pipeline.batches.shapes import file_object
from pipeline.errors import (
    InvalidQuery,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from pipeline.ingress.compat.errors import speaking
from pipeline.ingress.compat.openai.errors import render_error
from pipeline.ingress.keys import SETTINGS
from pipeline.ingress.principal import principal_of

# Where the routes find the batch store.
BATCH_STORE: Final = web.AppKey("batch_store", BatchStore)
BATCH_NOTICES: Final = web.AppKey("batch_notices", BatchNotices)
PURPOSES: Final = ("batch",)
# What `GET /v1/files` lists: every purpose a tenant's files have (batch outputs too).
LISTED_PURPOSES: Final = ("batch", "batch_output")
# OpenAI's list bounds: 1 to 10,000 files a page, 10,000 unless asked.
_LIST_MAX: Final = 10_000
_MAX_FIELD_BYTES: Final = 1024
_READ_CHUNK: Final = 256 * 1024

openai_errors = speaking(render_error)


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the file is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


@openai_errors
async def post_file(request: web.Request) -> web.StreamResponse:
    """`POST /v1/files`: a multipart upload of `file` with `purpose=batch`."""
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType("upload a file as multipart/form-data")
    limit = request.app[SETTINGS].batch_file_max_bytes
    reader = await request.multipart()
    purpose: str | None = None
    content: bytes | None = None
    filename = "upload.jsonl"
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ValidationFailed("nested multipart bodies are not accepted")
        if part.name == "file":
            filename = (part.filename or filename)[:255]
            content = await _read_part(part, limit)
        elif part.name == "purpose":
            purpose = (await _read_part(part, _MAX_FIELD_BYTES)).decode(errors="replace")
        else:
            await _read_part(part, _MAX_FIELD_BYTES * 64)  # fields promptbus does not use
    if content is None:
        raise ValidationFailed("the upload has no `file` part", field="file")
    if purpose not in PURPOSES:
        raise ValidationFailed(f"purpose must be one of {', '.join(PURPOSES)}", field="purpose")
    info = await request.app[BATCH_STORE].add_file(
        file_id=new_id("file-"),
        tenant=principal_of(request).tenant,
        purpose=purpose,
        filename=filename,
        content=content,
    )
    return _json(file_object(info))


@openai_errors
async def list_files(request: web.Request) -> web.StreamResponse:
    """`GET /v1/files?purpose=&limit=&after=&order=`: the tenant's files, a cursor page."""
    query = request.query
    try:
        limit = int(query.get("limit", _LIST_MAX))
    except ValueError:
        raise InvalidQuery("limit must be a whole number") from None
    if not 1 <= limit <= _LIST_MAX:
        raise InvalidQuery(f"limit must be from 1 to {_LIST_MAX}")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidQuery("order must be asc or desc")
    purpose = query.get("purpose") or None
    if purpose is not None and purpose not in LISTED_PURPOSES:
        raise InvalidQuery(f"purpose must be one of {', '.join(LISTED_PURPOSES)}")
    found, more = await request.app[BATCH_STORE].files(
        principal_of(request).tenant,
        purpose=purpose,
        after=query.get("after") or None,
        limit=limit,
        newest_first=order == "desc",
    )
    data = [file_object(info) for info in found]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    page = {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more}
    return _json(page)


def _file_id(request: web.Request) -> str:
    return request.match_info["file_id"]


@openai_errors
async def get_file(request: web.Request) -> web.StreamResponse:
    """`GET /v1/files/{id}`."""
    info = await request.app[BATCH_STORE].file(principal_of(request).tenant, _file_id(request))
    if info is None:
        raise NotFound(f"no file {_file_id(request)!r}", field="file_id")
    return _json(file_object(info))


@openai_errors
async def get_file_content(request: web.Request) -> web.StreamResponse:
    """`GET /v1/files/{id}/content`: the file's bytes."""
    store = request.app[BATCH_STORE]
    content = await store.content(principal_of(request).tenant, _file_id(request))
    if content is None:
        raise NotFound(f"no file {_file_id(request)!r}", field="file_id")
    return web.Response(body=content, content_type="application/jsonl")


@openai_errors
async def delete_file(request: web.Request) -> web.StreamResponse:
    """`DELETE /v1/files/{id}`."""
    deleted = await request.app[BATCH_STORE].delete_file(
        principal_of(request).tenant, _file_id(request)
    )
    if not deleted:
        raise NotFound(f"no file {_file_id(request)!r}", field="file_id")
    return _json({"id": _file_id(request), "object": "file", "deleted": True})


def add_routes(app: web.Application) -> None:
    """Serve the Files routes on `app`."""
    app.router.add_post("/v1/files", post_file)
    app.router.add_get("/v1/files", list_files)
    app.router.add_get("/v1/files/{file_id}", get_file)
    app.router.add_get("/v1/files/{file_id}/content", get_file_content)
    app.router.add_delete("/v1/files/{file_id}", delete_file)
