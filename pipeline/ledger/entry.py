"""One usage record as the code builds it: the fields of `UsageRecord`, as plain data."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

# How a request ended.
OK: Final = "ok"
ERROR: Final = "error"
CANCELLED: Final = "cancelled"
# The cache tier of a request that rode on an identical request's upstream call.
COALESCED: Final = "coalesced"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class UsageEntry:
    """One answered or failed request, on its way to the `usage_records` table."""

    tenant: str
    request_id: str
    surface: str
    model: str
    status: str
    latency_ms: float
    at: datetime = field(default_factory=_now)
    key_id: str | None = None
    job_id: str | None = None
    streamed: bool = False
    deployment: str | None = None
    provider: str | None = None
    provider_model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    saved_usd: float = 0.0
    cache_tier: str | None = None
    error_type: str | None = None
    template_id: str | None = None
    template_version: str | None = None
    chain_id: str | None = None
    chain_version: int | None = None
    chain_step: str | None = None
