"""promptbus errors as OpenAI's error object, with retry hints the SDK obeys."""

import math
from typing import Any

import orjson
from aiohttp import web

from pipeline.chat_completions import openai_error_object, openai_status
from pipeline.errors import PromptbusError


def status_of(error: PromptbusError) -> int:
    """The status on this surface: OpenAI answers bad input and filtered prompts with 400."""
    return openai_status(error.status)


def error_object(error: PromptbusError) -> dict[str, Any]:
    """`{"message", "type", "param", "code"}` for `error`."""
    return openai_error_object(error.status, error.type, error.message, error.field)


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
