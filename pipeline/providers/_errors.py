"""Whatever a LangChain client raised, as the promptbus error that says what to do next."""

from collections.abc import Iterator, Mapping
from typing import Any, Final

import aiohttp
import httpx
import openai
from google.genai import errors as genai_errors
from langchain_core.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelError,
    ModelRateLimitError,
    ModelTimeoutError,
)

from pipeline.errors import (
    PromptBlocked,
    PromptbusError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from pipeline.providers._retry_after import gemini_retry_delay, header_retry_after

_UNAVAILABLE_CODES: Final = frozenset({500, 502, 503})
_TIMEOUT_CODES: Final = frozenset({408, 504})
# Error messages end up in responses and logs: keep a provider's long body out of both.
_MAX_MESSAGE: Final = 500

# openai wraps its transport's errors in its own classes; google-genai raises aiohttp's
# (or httpx's, on its httpx transport) as they are.
_TIMEOUTS: Final = (
    TimeoutError,
    httpx.TimeoutException,
    openai.APITimeoutError,
)
_CONNECTION_ERRORS: Final = (
    ConnectionError,
    aiohttp.ClientConnectionError,
    # A body cut short by a reset connection.
    aiohttp.ClientPayloadError,
    httpx.TransportError,
    openai.APIConnectionError,
)


def translate(exc: BaseException) -> PromptbusError:
    """The promptbus error for `exc` (or for the SDK error it wraps)."""
    chain = list(_chain(exc))
    for cause in chain:
        if isinstance(cause, PromptbusError):
            return cause
        if isinstance(cause, genai_errors.APIError):
            delay = gemini_retry_delay(cause.details)
            if delay is None:
                delay = header_retry_after(_headers(cause.response))
            return from_status(cause.code, cause.message or str(cause), retry_after_s=delay)
        if isinstance(cause, openai.APIStatusError):
            if cause.code == "content_filter":
                # OpenAI (and Azure) refuse a prompt their filter flags with a 400.
                return PromptBlocked(
                    f"the provider refused the prompt: {_clip(cause.message)}",
                    finish_reason="content_filter",
                )
            delay = header_retry_after(_headers(cause.response))
            return from_status(cause.status_code, cause.message, retry_after_s=delay)
    for cause in chain:
        if isinstance(cause, _TIMEOUTS):
            return UpstreamTimeout("the model did not answer in time")
        if isinstance(cause, _CONNECTION_ERRORS):
            return UpstreamUnavailable(f"cannot reach the model provider: {_describe(cause)}")
    for cause in chain:
        if isinstance(cause, ModelError):
            return _from_langchain(cause)
    return UpstreamError(f"the model provider failed: {_describe(exc)}")


def from_status(code: int, message: str, *, retry_after_s: float | None = None) -> PromptbusError:
    """The promptbus error for an HTTP status the provider answered with."""
    text = f"provider answered {code}: {_clip(message)}"
    if code in _TIMEOUT_CODES:
        return UpstreamTimeout(text, retry_after_s=retry_after_s)
    if code == 429:
        return UpstreamRateLimited(text, retry_after_s=retry_after_s)
    if code in _UNAVAILABLE_CODES:
        return UpstreamUnavailable(text, retry_after_s=retry_after_s)
    if 400 <= code < 500:
        return UpstreamRejected(text, retry_after_s=retry_after_s)
    return UpstreamError(text, retry_after_s=retry_after_s)


def _from_langchain(exc: ModelError) -> PromptbusError:
    """Classify a LangChain model error from an SDK promptbus does not know by name."""
    text = _describe(exc)
    if isinstance(exc, ModelTimeoutError):
        return UpstreamTimeout(f"the model did not answer in time: {text}")
    if isinstance(exc, ModelConnectionError | ModelRateLimitError | ModelAPIError):
        return UpstreamUnavailable(f"the model provider is unavailable: {text}")
    return UpstreamRejected(f"the model provider rejected the request: {text}")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what caused it, and so on (each exception once)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def _headers(response: Any) -> Mapping[str, str] | None:
    """The headers of an aiohttp or httpx response, if there is one."""
    headers = getattr(response, "headers", None)
    return headers if isinstance(headers, Mapping) else None


def _describe(exc: BaseException) -> str:
    detail = str(exc)
    return _clip(f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."
