"""The retry policy: what to retry, how long to wait, and the budget that bounds it all."""

import random
from dataclasses import dataclass

from pipeline.errors import PromptbusError, UpstreamTimeout, UpstreamUnavailable
from pipeline.settings import Settings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, under one budget of upstream calls per request.

    The budget counts every upstream call a request makes, whichever deployment it goes to
    and whichever layer retries it (the SDK makes one attempt per call; the sync path waits
    in process; the job path waits as a Celery retry with a countdown).
    """

    max_attempts: int
    base_s: float
    max_backoff_s: float
    sync_deadline_s: float = 30.0
    job_deadline_s: float = 600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> "RetryPolicy":
        """The policy the settings describe."""
        return cls(
            max_attempts=settings.retry_max_attempts,
            base_s=settings.retry_base_s,
            max_backoff_s=settings.retry_max_backoff_s,
            sync_deadline_s=settings.sync_deadline_s,
            job_deadline_s=settings.job_deadline_s,
        )

    @staticmethod
    def retryable(error: PromptbusError) -> bool:
        """Whether another call may succeed: connect errors, timeouts, 408/429/5xx overloads.

        Never a rejected request (400/401/403/404), a safety block or an unusable answer.
        """
        return isinstance(error, UpstreamUnavailable | UpstreamTimeout)

    def backoff_s(
        self, failures: int, retry_after_s: float | None, rng: random.Random | None = None
    ) -> float:
        """The wait before the next round after `failures` failed rounds.

        Full jitter: uniform in [0, min(cap, base * 2^(failures-1))]; a delay the server asked
        for (Retry-After, RetryInfo) is a floor.
        """
        ceiling = min(self.max_backoff_s, self.base_s * 2 ** max(0, failures - 1))
        wait = (rng or random).uniform(0, ceiling)
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return wait
