"""Every failure a client raises becomes the promptbus error that says what to do next.

The SDK exceptions here are the real classes, built the way the SDKs build them; the
same translation runs over real HTTP in test_gemini.py and test_openai.py.
"""

import aiohttp
import httpx
import httpx2
import openai
import pytest
from google.genai import errors as genai_errors
from langchain_core.exceptions import ModelAuthenticationError, ModelTimeoutError
from langchain_google_genai.chat_models import GoogleRateLimitError

from pipeline.errors import (
    PromptBlocked,
    PromptbusError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from pipeline.providers._errors import from_status, translate
from pipeline.providers._retry_after import RETRY_INFO_TYPE

REQUEST = httpx.Request("POST", "http://127.0.0.1:1/v1beta/models")
# openai>=3 runs on httpx2, an httpx fork: its errors carry httpx2 requests and responses.
OPENAI_REQUEST = httpx2.Request("POST", "http://127.0.0.1:1/v1/chat/completions")


def google_error(code: int, delay: str | None = None) -> genai_errors.APIError:
    details = [{"@type": RETRY_INFO_TYPE, "retryDelay": delay}] if delay else []
    body = {"error": {"code": code, "message": "nope", "status": "X", "details": details}}
    cls = genai_errors.ClientError if code < 500 else genai_errors.ServerError
    return cls(code, body, None)


# The classes the openai SDK raises for each status (openai._client._make_status_error).
OPENAI_CLASSES: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    429: openai.RateLimitError,
    503: openai.InternalServerError,
}


def openai_error(
    code: int, headers: dict[str, str] | None = None, error_code: str | None = None
) -> openai.APIStatusError:
    body = {"message": "nope", "type": "invalid_request_error", "code": error_code}
    response = httpx2.Response(code, headers=headers, request=OPENAI_REQUEST, json={"error": body})
    cls = OPENAI_CLASSES.get(code, openai.APIStatusError)
    return cls("nope", response=response, body=body)


def wrapped(outer: Exception, inner: BaseException) -> Exception:
    """`outer` raised `from inner`, as LangChain wraps SDK errors."""
    try:
        raise outer from inner
    except Exception as exc:
        return exc


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (408, UpstreamTimeout),
        (429, UpstreamRateLimited),
        (500, UpstreamUnavailable),
        (502, UpstreamUnavailable),
        (503, UpstreamUnavailable),
        (504, UpstreamTimeout),
        (400, UpstreamRejected),
        (401, UpstreamRejected),
        (403, UpstreamRejected),
        (404, UpstreamRejected),
        (422, UpstreamRejected),
        (501, UpstreamError),
    ],
)
def test_statuses(code: int, cls: type[PromptbusError]):
    error = from_status(code, "why")

    assert type(error) is cls
    assert isinstance(error, UpstreamUnavailable) is (code in (429, 500, 502, 503))
    assert error.retryable is (code not in (400, 401, 403, 404, 422))
    assert f"provider answered {code}: why" in error.message


def test_gemini_rate_limit_wrapped_by_langchain_keeps_the_retry_delay():
    # Given ChatGoogleGenerativeAI's GoogleRateLimitError raised from the SDK's ClientError
    exc = wrapped(GoogleRateLimitError("Error calling model"), google_error(429, "1.5s"))

    error = translate(exc)

    assert isinstance(error, UpstreamUnavailable)
    assert error.retryable
    assert error.retry_after_s == 1.5


def test_gemini_server_error_without_retry_info():
    error = translate(google_error(503))

    assert isinstance(error, UpstreamUnavailable)
    assert error.retry_after_s is None


def test_gemini_bad_request_is_not_retryable():
    error = translate(google_error(400))

    assert isinstance(error, UpstreamRejected)
    assert not error.retryable


def test_openai_rate_limit_with_retry_after_ms():
    error = translate(openai_error(429, {"retry-after-ms": "1200", "retry-after": "2"}))

    assert isinstance(error, UpstreamUnavailable)
    assert error.retry_after_s == pytest.approx(1.2)


def test_openai_503_with_retry_after_seconds():
    error = translate(openai_error(503, {"Retry-After": "4"}))

    assert isinstance(error, UpstreamUnavailable)
    assert error.retry_after_s == 4.0


def test_openai_408_is_a_timeout_and_400_a_rejection():
    assert isinstance(translate(openai_error(408)), UpstreamTimeout)
    rejected = translate(openai_error(400))
    assert isinstance(rejected, UpstreamRejected)
    assert not rejected.retryable


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError(),
        aiohttp.ServerTimeoutError("read timeout"),
        httpx.ReadTimeout("slow", request=REQUEST),
        openai.APITimeoutError(OPENAI_REQUEST),
        ModelTimeoutError("slow"),
    ],
)
def test_timeouts(exc: Exception):
    error = translate(exc)

    assert isinstance(error, UpstreamTimeout)
    assert error.retryable


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError(104, "Connection reset by peer"),
        ConnectionRefusedError(111, "Connection refused"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientPayloadError("Response payload is not completed"),
        httpx.ConnectError("refused", request=REQUEST),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        wrapped(openai.APIConnectionError(request=OPENAI_REQUEST), httpx2.ReadError("reset")),
    ],
)
def test_connection_failures(exc: Exception):
    error = translate(exc)

    assert isinstance(error, UpstreamUnavailable)
    assert error.retryable
    assert "cannot reach the model provider" in error.message


def test_openai_content_filter_400_is_a_block():
    error = translate(openai_error(400, error_code="content_filter"))

    assert isinstance(error, PromptBlocked)
    assert error.finish_reason == "content_filter"
    assert not error.retryable


def test_a_langchain_error_from_an_unknown_sdk_by_its_class():
    assert isinstance(translate(ModelAuthenticationError("bad key")), UpstreamRejected)


def test_anything_else_is_an_upstream_error():
    error = translate(ValueError("odd reply"))

    assert type(error) is UpstreamError
    assert "ValueError: odd reply" in error.message


def test_a_long_provider_message_is_clipped():
    error = from_status(400, "x" * 5000)

    assert len(error.message) < 600
