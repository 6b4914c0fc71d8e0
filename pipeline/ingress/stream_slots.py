"""How many event streams (job and batch SSE) each tenant holds open at once, per process.

An event stream lasts as long as its job or batch (up to its lifetime, `SSE_MAX_S`), so a
client that opens them and never lets go would hold handlers and store watches without
end: past `sse_max_streams_per_tenant` of one tenant open in a process, a new one is a 429.
"""

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from pipeline.errors import RateLimited

# How long a refused stream is told to wait: streams end when their jobs do.
_RETRY_AFTER_S = 5.0


class StreamSlots:
    """The event streams open per tenant, at most `limit` each."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: Counter[str] = Counter()

    @contextmanager
    def hold(self, tenant: str) -> Iterator[None]:
        """Hold one of `tenant`'s slots for the block; a 429 if none is free."""
        if self._open[tenant] >= self._limit:
            raise RateLimited(
                f"at most {self._limit} event streams open at once per tenant",
                retry_after_s=_RETRY_AFTER_S,
            )
        self._open[tenant] += 1
        try:
            yield
        finally:
            self._open[tenant] -= 1
            if not self._open[tenant]:
                del self._open[tenant]


STREAM_SLOTS = web.AppKey("stream_slots", StreamSlots)
