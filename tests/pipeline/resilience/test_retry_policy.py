"""The retry policy: which failures are worth another call, and how long to wait first."""

import random

import pytest

from pipeline.errors import (
    ContentBlocked,
    EmptyAnswer,
    InvalidModelOutput,
    PromptbusError,
    RateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from pipeline.resilience.retry import RetryPolicy

POLICY = RetryPolicy(max_attempts=4, base_s=0.5, max_backoff_s=4.0)


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (UpstreamUnavailable("503"), True),
        (UpstreamUnavailable("429"), True),
        (UpstreamTimeout("504"), True),
        (UpstreamRejected("400"), False),
        (ContentBlocked("safety"), False),
        (EmptyAnswer("empty"), False),
        (InvalidModelOutput("bad json"), False),
        (RateLimited("ours, not the provider's"), False),
        (PromptbusError("unknown"), False),
    ],
)
def test_only_overloads_and_timeouts_are_retried(error: PromptbusError, retry: bool) -> None:
    assert RetryPolicy.retryable(error) is retry


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    rng = random.Random(7)
    for failures, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)):
        waits = [POLICY.backoff_s(failures, None, rng) for _ in range(500)]
        assert all(0 <= w <= ceiling for w in waits)
        # spread over the whole range, not bunched at the ceiling (that would be no jitter)
        assert min(waits) < ceiling * 0.1
        assert max(waits) > ceiling * 0.9


def test_a_server_retry_delay_is_a_floor() -> None:
    rng = random.Random(1)
    waits = [POLICY.backoff_s(1, 2.5, rng) for _ in range(100)]
    assert all(w == 2.5 for w in waits), "the jitter (at most 0.5 s) must not cut the delay"
    assert all(POLICY.backoff_s(4, 1.0, rng) >= 1.0 for _ in range(100))
