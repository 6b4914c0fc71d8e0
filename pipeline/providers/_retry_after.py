"""How long the server asked us to wait: Gemini's RetryInfo and the Retry-After headers."""

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

RETRY_INFO_TYPE: Final = "type.googleapis.com/google.rpc.RetryInfo"
# A protobuf Duration in its JSON form: "1s", "0.5s", "1.000340012s".
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)s\s*$")
# Ignore absurd values rather than park a request for days on a server's typo.
MAX_RETRY_AFTER_S: Final = 24 * 3600.0


def parse_duration(value: Any) -> float | None:
    """Seconds in a protobuf Duration: `"1.5s"` or `{"seconds": 1, "nanos": 500000000}`."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        return _bounded(float(match.group(1))) if match else None
    if isinstance(value, Mapping):
        seconds, nanos = value.get("seconds", 0), value.get("nanos", 0)
        try:
            return _bounded(float(seconds) + float(nanos) / 1e9)
        except (TypeError, ValueError):
            return None
    return None


def gemini_retry_delay(body: Any) -> float | None:
    """The `RetryInfo.retryDelay` in a Google error body (`{"error": {"details": [...]}}`)."""
    error = body.get("error", body) if isinstance(body, Mapping) else None
    details = error.get("details") if isinstance(error, Mapping) else None
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, Mapping) and detail.get("@type") == RETRY_INFO_TYPE:
            return parse_duration(detail.get("retryDelay"))
    return None


def header_retry_after(
    headers: Mapping[str, str] | None, now: datetime | None = None
) -> float | None:
    """Seconds from `retry-after-ms` (OpenAI's) or `Retry-After` (seconds or an HTTP date)."""
    if headers is None:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = _number(lowered.get("retry-after-ms"))
    if millis is not None:
        return _bounded(millis / 1000)
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return _bounded(seconds)
    return _until_date(value, now or datetime.now(UTC))


def _until_date(value: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are always GMT; parsedate leaves "-0000" naive.
        when = when.replace(tzinfo=UTC)
    return _bounded(max(0.0, (when - now).total_seconds()))


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _bounded(seconds: float) -> float | None:
    return seconds if 0 <= seconds <= MAX_RETRY_AFTER_S else None
