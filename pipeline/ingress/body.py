"""Reading a JSON request body into an envelope, with every bad-input case a clear 4xx."""

from typing import TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from pipeline.errors import InvalidJson, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

M = TypeVar("M", bound=BaseModel)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw JSON body; 415 unless it is JSON, 413 past `limit` bytes."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"content type must be application/json, not {request.content_type or 'none'}"
        )
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"request body is over the {limit}-byte limit") from exc


async def read_json(request: web.Request, limit: int) -> object:
    """The parsed JSON body; 415 unless it is JSON, 413 past `limit` bytes, 400 if malformed."""
    raw = await read_body(request, limit)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"request body is not valid JSON: {exc}") from exc


def parse_model(model: type[M], data: object) -> M:
    """`data` validated as `model`; a 422 naming the first bad field otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_failed(exc) from exc


def parse_json_model(model: type[M], raw: bytes) -> M:
    """JSON `raw` validated as `model` in one pass; 400 if not JSON, 422 if not valid."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise InvalidJson(f"request body is not valid JSON: {first['msg']}") from exc
        raise validation_failed(exc) from exc


def validation_failed(exc: ValidationError) -> ValidationFailed:
    """A 422 naming the first bad field and summing up the first few errors."""
    errors = exc.errors(include_url=False)
    field = ".".join(str(part) for part in errors[0]["loc"]) or None
    summary = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:5]
    )
    return ValidationFailed(summary, field=field)
