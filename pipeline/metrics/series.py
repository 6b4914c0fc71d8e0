"""Every metric promptbus exports: its name, labels and buckets, in this one module.

OpenTelemetry's GenAI client metrics keep their names as Prometheus spells them
(`gen_ai.client.token.usage` -> `gen_ai_client_token_usage`, attribute dots -> `_`) and the
bucket boundaries the convention advises; everything else is `promptbus_*`. Every label's
values come from a bounded set: a route's canonical pattern (never the raw path), a status,
a deployment or model of the catalogue, an error type of the exception tree, a tenant under
the cap (`metrics_max_tenants`). Gauges say how they merge across processes
(`multiprocess_mode`), since prefork children and supervised processes export together.
"""

from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# gen_ai.client.token.usage advised boundaries ({token}).
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
# gen_ai.client.operation.duration advised boundaries (s).
OPERATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
# HTTP requests: a cache hit answers in about a millisecond, a generation in seconds.
HTTP_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
)  # fmt: skip
WAIT_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

# promptbus_breaker_state values.
BREAKER_STATES: Final = {"closed": 0, "half_open": 1, "open": 2}


@dataclass(frozen=True)
class Series:
    """The metric families, registered on one registry."""

    http_duration: Histogram
    cache_lookups: Counter
    coalesced: Counter
    upstream_calls: Counter
    operation_duration: Histogram
    token_usage: Histogram
    tokens: Counter
    cost: Counter
    breaker_state: Gauge
    breaker_transitions: Counter
    rate_limited: Counter
    rate_limit_wait: Histogram
    jobs: Counter
    job_stages: Counter
    queue_messages: Gauge
    webhook_deliveries: Counter
    ledger_spool: Gauge
    ledger_dropped: Counter

    @classmethod
    def on(cls, registry: CollectorRegistry) -> "Series":
        """Every family, registered on `registry`."""
        r = registry
        return cls(
            http_duration=Histogram(
                "promptbus_http_request_duration_seconds",
                "HTTP requests by route pattern, method and status, and how long each took",
                ["route", "method", "status"],
                buckets=HTTP_BUCKETS,
                registry=r,
            ),
            cache_lookups=Counter(
                "promptbus_cache_lookups",
                "Response cache lookups of requests: result hit (tier l1 or l2), miss, bypass",
                ["result", "tier"],
                registry=r,
            ),
            coalesced=Counter(
                "promptbus_coalesced_requests",
                "Requests answered by another identical request's upstream call "
                "(scope process: in this process; processes: through Redis)",
                ["scope"],
                registry=r,
            ),
            upstream_calls=Counter(
                "promptbus_upstream_calls",
                "Upstream calls by deployment and outcome (ok, or the error type)",
                ["deployment", "outcome"],
                registry=r,
            ),
            operation_duration=Histogram(
                "gen_ai_client_operation_duration_seconds",
                "GenAI operation duration (OpenTelemetry gen_ai.client.operation.duration)",
                [
                    "gen_ai_operation_name",
                    "gen_ai_provider_name",
                    "gen_ai_request_model",
                    "error_type",
                ],
                buckets=OPERATION_BUCKETS,
                registry=r,
            ),
            token_usage=Histogram(
                "gen_ai_client_token_usage",
                "Tokens per upstream call (OpenTelemetry gen_ai.client.token.usage)",
                [
                    "gen_ai_operation_name",
                    "gen_ai_provider_name",
                    "gen_ai_token_type",
                    "gen_ai_request_model",
                ],
                buckets=TOKEN_BUCKETS,
                registry=r,
            ),
            tokens=Counter(
                "promptbus_tokens",
                "Tokens spent on answers (cache hits and coalesced answers spend none), "
                "by model, tenant and token type",
                ["model", "tenant", "token_type"],
                registry=r,
            ),
            cost=Counter(
                "promptbus_cost_usd",
                "US dollars spent on answers at list price, by model and tenant",
                ["model", "tenant"],
                registry=r,
            ),
            breaker_state=Gauge(
                "promptbus_breaker_state",
                "Circuit breaker per deployment: 0 closed, 1 half open (probing), 2 open; "
                "across processes the worst",
                ["deployment"],
                multiprocess_mode="livemax",
                registry=r,
            ),
            breaker_transitions=Counter(
                "promptbus_breaker_transitions",
                "Circuit breaker changes per deployment, by the state entered",
                ["deployment", "state"],
                registry=r,
            ),
            rate_limited=Counter(
                "promptbus_rate_limited",
                "Times a deployment was passed over because its rate limit was full",
                ["deployment"],
                registry=r,
            ),
            rate_limit_wait=Histogram(
                "promptbus_rate_limit_wait_seconds",
                "Waits for room under a rate limit (path sync: in process; job: a Celery retry)",
                ["path"],
                buckets=WAIT_BUCKETS,
                registry=r,
            ),
            jobs=Counter(
                "promptbus_jobs",
                "Jobs that entered each state: queued, then succeeded, failed or cancelled",
                ["state"],
                registry=r,
            ),
            job_stages=Counter(
                "promptbus_job_stages",
                "Job stages started (the job is running)",
                ["stage"],
                registry=r,
            ),
            queue_messages=Gauge(
                "promptbus_queue_messages",
                "Messages waiting in each stage queue on the broker, as last sampled",
                ["queue"],
                multiprocess_mode="mostrecent",
                registry=r,
            ),
            webhook_deliveries=Counter(
                "promptbus_webhook_deliveries",
                "Webhook delivery attempts by outcome: delivered, retrying, failed, refused",
                ["outcome"],
                registry=r,
            ),
            ledger_spool=Gauge(
                "promptbus_ledger_spool_records",
                "Usage records waiting in the ledger's spool for the database",
                multiprocess_mode="livesum",
                registry=r,
            ),
            ledger_dropped=Counter(
                "promptbus_ledger_dropped_records",
                "Usage records the ledger dropped because its spool was full",
                registry=r,
            ),
        )
