"""promptbus errors as OpenAI's error object, with retry hints the SDK obeys."""

import math
from typing import Any, Final

import orjson
from aiohttp import web

from pipeline.errors import ContentBlocked, PromptbusError, ValidationFailed

# OpenAI's error types by status; anything else of 5xx is a server error.
_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_CODES: Final = {"unknown_model": "model_not_found", "content_blocked": "content_filter"}


def status_of(error: PromptbusError) -> int:
    """The status on this surface: OpenAI answers bad input and filtered prompts with 400."""
    if isinstance(error, ValidationFailed | ContentBlocked):
        return 400
    return error.status


def error_object(error: PromptbusError) -> dict[str, Any]:
    """`{"message", "type", "param", "code"}` for `error`."""
    status = status_of(error)
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {
        "message": error.message,
        "type": kind,
        "param": error.field,
        "code": _CODES.get(error.type, error.type),
    }


def should_retry(error: PromptbusError) -> bool:
    """Whether the SDK may try again: only what promptbus did not already retry upstream."""
    return error.retryable and not error.attempts


def render_error(error: PromptbusError) -> web.Response:
    """The error response: OpenAI's body, `x-should-retry`, and `retry-after(-ms)` if known."""
    headers = {"x-should-retry": "true" if should_retry(error) else "false"}
    # With x-should-retry false the SDK does not retry, whatever retry-after says.
    if error.retry_after_s is not None:
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after_s)))
        headers["retry-after-ms"] = str(max(1, math.ceil(error.retry_after_s * 1000)))
    return web.Response(
        status=status_of(error),
        body=orjson.dumps({"error": error_object(error)}),
        content_type="application/json",
        headers=headers,
    )
