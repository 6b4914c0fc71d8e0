"""promptbus errors as Google's error body: `{"error": {"code", "message", "status", "details"}}`.

google-genai raises `errors.ClientError` for a 4xx and `errors.ServerError` for a 5xx, so
bad input of every kind (promptbus's 413, 415 and 422 included) is a 400 INVALID_ARGUMENT
here, as Google answers it. `details` hold an ErrorInfo with promptbus's error type, a
BadRequest naming the field when one was wrong, and a RetryInfo when a wait is known.
"""

import math
from typing import Any, Final

import orjson
from aiohttp import web

from pipeline.errors import PromptbusError, RateLimited, UpstreamRateLimited

_TYPE: Final = "type.googleapis.com/google.rpc."
# google.rpc.Code names by HTTP status, as Google's APIs pair them.
_STATUS: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_BAD_INPUT: Final = frozenset({400, 413, 415, 422})
# Statuses on which a caller may wait and try again; the only ones given RetryInfo.
_WAIT: Final = frozenset({429, 503})


def code_of(error: PromptbusError) -> int:
    """The HTTP status on this surface."""
    if isinstance(error, RateLimited | UpstreamRateLimited):
        # promptbus's own limit, or the provider's quota: Gemini's RESOURCE_EXHAUSTED.
        return 429
    if error.status in _BAD_INPUT:
        return 400
    return error.status


def _status(code: int, error: PromptbusError) -> str:
    if code == 502:
        # Google's APIs send no 502 of their own: a failed upstream call is UNAVAILABLE
        # while a retry may help, INTERNAL when it cannot (an answer that broke its schema).
        return "UNAVAILABLE" if error.retryable else "INTERNAL"
    return _STATUS.get(code, "INTERNAL" if code >= 500 else "FAILED_PRECONDITION")


def duration(seconds: float) -> str:
    """Seconds as a protobuf Duration in JSON: "2s", "0.500s"."""
    millis = max(0, round(seconds * 1000))
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis / 1000:.3f}s"


def _details(code: int, error: PromptbusError) -> list[dict[str, Any]]:
    metadata = {"retryable": str(error.retryable).lower()}
    if error.finish_reason:
        metadata["finish_reason"] = error.finish_reason
    if error.attempts is not None:
        metadata["attempts"] = str(error.attempts)
    if error.tried:
        metadata["tried"] = ",".join(error.tried)
    details: list[dict[str, Any]] = [
        {
            "@type": _TYPE + "ErrorInfo",
            "reason": error.type.upper(),
            "domain": "promptbus",
            "metadata": metadata,
        }
    ]
    if code == 400 and error.field:
        violation = {"field": error.field, "description": error.message}
        details.append({"@type": _TYPE + "BadRequest", "fieldViolations": [violation]})
    if code in _WAIT and error.retry_after_s is not None:
        details.append({"@type": _TYPE + "RetryInfo", "retryDelay": duration(error.retry_after_s)})
    return details


def error_object(error: PromptbusError) -> dict[str, Any]:
    """`{"code", "message", "status", "details"}` for `error`."""
    code = code_of(error)
    return {
        "code": code,
        "message": error.message,
        "status": _status(code, error),
        "details": _details(code, error),
    }


def render_error(error: PromptbusError) -> web.Response:
    """The error response: Google's body, and `Retry-After` when a wait is known."""
    code = code_of(error)
    headers = {}
    if code in _WAIT and error.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    return web.Response(
        status=code,
        body=orjson.dumps({"error": error_object(error)}),
        content_type="application/json",
        headers=headers,
    )
