"""GET /openapi.json: the OpenAPI 3.1 document of every route the ingress serves.

A new route adds one `Operation` to `operations.OPERATIONS`.
"""

import asyncio
from collections.abc import Sequence
from typing import Final

import orjson
from aiohttp import web

from pipeline.ingress.openapi.document import (
    Operation,
    Param,
    Reply,
    Schema,
    Stream,
    build_document,
    openapi_path,
)
from pipeline.ingress.openapi.operations import OPERATIONS

PATH: Final = "/openapi.json"

__all__ = [
    "OPERATIONS",
    "PATH",
    "Operation",
    "Param",
    "Reply",
    "Schema",
    "Stream",
    "add_route",
    "build_document",
    "openapi_path",
]


def add_route(app: web.Application, operations: Sequence[Operation] = OPERATIONS) -> None:
    """Serve the document of `operations` on `app`, built on its first request and kept."""
    built: bytes | None = None

    async def get_openapi(request: web.Request) -> web.Response:
        """The OpenAPI document."""
        nonlocal built
        if built is None:
            # Off the loop: generating every model's schema takes tens of milliseconds.
            document = await asyncio.to_thread(build_document, operations)
            built = orjson.dumps(document)
        return web.Response(body=built, content_type="application/json")

    app.router.add_get(PATH, get_openapi)
