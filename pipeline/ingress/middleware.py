"""Request ids on every request, every error as the JSON error body, and each request counted."""

import math
import os
import re
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from pipeline.errors import (
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PromptbusError,
    UnsupportedMediaType,
)
from pipeline.metrics import Metrics

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

log = structlog.get_logger("promptbus.ingress")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The route label of a request that matched no route (its raw path would be unbounded).
UNMATCHED = "unmatched"


def error_response(error: PromptbusError, request_id: str) -> web.Response:
    """The JSON error response for `error`, with `Retry-After` when it knows a wait.

    Some waits come with errors that are not retryable as such: a spent budget renews at
    the period's end, and `Retry-After` says when.
    """
    headers = {REQUEST_ID_HEADER: request_id}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    return web.Response(
        status=error.status,
        body=error.body().model_dump_json(exclude_none=True),
        content_type="application/json",
        headers=headers,
    )


def log_failure(request: web.Request, error: PromptbusError) -> None:
    """The one log line of a request that ended in `error`."""
    log.info(
        "request failed",
        request_id=request[REQUEST_ID_KEY],
        path=request.path,
        status=error.status,
        error=error.type,
    )


def _from_http_exception(exc: web.HTTPException) -> PromptbusError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge("request body is larger than the configured limit")
    if isinstance(exc, web.HTTPNotFound):
        return NotFound("no such route")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(
            f"method not allowed; allowed: {', '.join(sorted(exc.allowed_methods))}"
        )
    if isinstance(exc, web.HTTPUnsupportedMediaType):
        return UnsupportedMediaType(exc.text or "unsupported media type")
    error = PromptbusError(exc.reason)
    error.status = exc.status  # type: ignore[misc]
    return error


def route_of(request: web.Request) -> str:
    """The canonical pattern of the route a request matched (`/v1/jobs/{job_id}`)."""
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical


def request_context(metrics: Metrics) -> Middleware:
    """The middleware: a request id for every request, every error as a JSON body, and each
    request's route, status and duration counted in `metrics`."""
    observe = metrics.http if metrics.enabled else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        sent = request.headers.get(REQUEST_ID_HEADER)
        request_id = sent if sent and _SAFE_ID.match(sent) else os.urandom(12).hex()
        request[REQUEST_ID_KEY] = request_id
        # Binding log context costs microseconds a hit cannot spare: code that logs binds
        # the request id itself (the miss path does), and the error lines here name it.
        try:
            response = await handler(request)
        except PromptbusError as exc:
            log_failure(request, exc)
            response = error_response(exc, request_id)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = error_response(_from_http_exception(exc), request_id)
        except Exception:
            log.exception("unhandled error", request_id=request_id, path=request.path)
            response = error_response(PromptbusError("internal error"), request_id)
        else:
            response.headers[REQUEST_ID_HEADER] = request_id
        if observe is not None:
            observe(
                route_of(request), request.method, response.status, time.perf_counter() - started
            )
        return response

    return middleware
