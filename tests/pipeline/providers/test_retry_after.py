"""Parsing every form a server uses to say how long to wait."""

from datetime import UTC, datetime

import pytest

from pipeline.providers._retry_after import (
    RETRY_INFO_TYPE,
    gemini_retry_delay,
    header_retry_after,
    parse_duration,
)

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("0.5s", 0.5),
        ("30s", 30.0),
        ("1.000340012s", 1.000340012),
        (".25s", 0.25),
        ({"seconds": 2, "nanos": 500_000_000}, 2.5),
        ({"seconds": "3"}, 3.0),
        ({"nanos": 250_000_000}, 0.25),
    ],
)
def test_protobuf_durations(value: object, seconds: float):
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["1", "1m", "s", "-1s", "abc", "", None, 3, {"seconds": "x"}])
def test_what_is_not_a_duration(value: object):
    assert parse_duration(value) is None


def test_gemini_retry_info_in_error_details():
    body = {
        "error": {
            "code": 429,
            "message": "Resource exhausted",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                {"@type": RETRY_INFO_TYPE, "retryDelay": "17s"},
            ],
        }
    }

    assert gemini_retry_delay(body) == 17.0


def test_gemini_retry_info_without_the_error_wrapper():
    # google-genai unwraps a one-element list body; some proxies send the error bare.
    body = {"details": [{"@type": RETRY_INFO_TYPE, "retryDelay": "0.5s"}]}

    assert gemini_retry_delay(body) == 0.5


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"code": 503, "message": "overloaded"}},
        {"error": {"details": "not a list"}},
        {"error": {"details": [{"@type": RETRY_INFO_TYPE}]}},
        {"error": {"details": [{"@type": "other", "retryDelay": "1s"}]}},
        "plain text",
        None,
    ],
)
def test_no_retry_info(body: object):
    assert gemini_retry_delay(body) is None


def test_retry_after_in_seconds():
    assert header_retry_after({"Retry-After": "3"}, NOW) == 3.0
    assert header_retry_after({"retry-after": " 1.5 "}, NOW) == 1.5


def test_retry_after_as_an_http_date():
    headers = {"Retry-After": "Wed, 25 Nov 2026 12:00:07 GMT"}

    assert header_retry_after(headers, NOW) == pytest.approx(7.0)


def test_retry_after_date_in_the_past_means_now():
    assert header_retry_after({"Retry-After": "Wed, 25 Nov 2026 11:59:00 GMT"}, NOW) == 0.0


def test_openai_retry_after_ms_wins_over_retry_after():
    headers = {"retry-after-ms": "250", "retry-after": "9"}

    assert header_retry_after(headers, NOW) == pytest.approx(0.25)


def test_a_bad_retry_after_ms_falls_back_to_retry_after():
    assert header_retry_after({"retry-after-ms": "soon", "retry-after": "2"}, NOW) == 2.0


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"Retry-After": "soon"},
        {"Retry-After": "-5"},
        {"Retry-After": "nan"},
        {"Retry-After": "inf"},
        {"Retry-After": "999999999"},
    ],
)
def test_no_usable_retry_after(headers: dict[str, str] | None):
    assert header_retry_after(headers, NOW) is None
