"""What the running system reports, as calls named for what happened.

`Metrics` records nothing (metrics off: `PROMPTBUS_METRICS=false`); `PrometheusMetrics`
records into the families of `series.py`. Label children are bound once and kept (binding
with `.labels()` costs more than the increment): up front where the labels are known, else
on first use, in dictionaries bounded by the label sets themselves.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry

from pipeline.metrics.series import BREAKER_STATES, Series
from pipeline.metrics.tenants import TenantCap

if TYPE_CHECKING:
    from pipeline.catalog import ModelSpec
    from schemas import Cost, Usage

# OpenTelemetry GenAI provider and operation names of promptbus's providers.
_OTEL_PROVIDERS: Final = {"gemini": "gcp.gemini", "openai": "openai"}
_OTEL_OPERATIONS: Final = {"gemini": "generate_content"}
# HTTP methods kept as themselves; any other is `other` (a client may send any token).
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """Records nothing: every hook is a no-op (metrics are off)."""

    enabled = False
    registry: CollectorRegistry | None = None

    def http(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP request answered, by route pattern."""

    def cache_hit(self, tier: str) -> None:
        """A request answered from the cache `tier` (l1, l2)."""

    def cache_miss(self) -> None:
        """A request found no (fresh enough) answer in the cache."""

    def cache_bypass(self) -> None:
        """A request that asked not to be answered from the cache."""

    def coalesced(self, scope: str) -> None:
        """A request answered by an identical request's call (`process` or `processes`)."""

    def upstream(
        self, spec: "ModelSpec", seconds: float, error: str | None, usage: "Usage | None"
    ) -> None:
        """One upstream call to `spec`'s deployment: how long, its error type if it failed."""

    def spent(self, model: str, tenant: str, usage: "Usage", cost: "Cost") -> None:
        """Tokens and cost an answer spent, by the model answering and the tenant asking."""

    def breaker(self, deployment: str, state: str) -> None:
        """A deployment's circuit entered `state` (closed, half_open, open)."""

    def rate_limited(self, deployment: str) -> None:
        """A deployment was passed over: its rate limit was full."""

    def rate_limit_wait(self, path: str, seconds: float) -> None:
        """A request waits `seconds` for room under a rate limit (`sync` or `job`)."""

    def job(self, state: str) -> None:
        """A job entered `state`."""

    def job_stage(self, stage: str) -> None:
        """A job started `stage`."""

    def queue_depth(self, queue: str, messages: int) -> None:
        """`messages` wait in the stage queue `queue`."""

    def webhook(self, outcome: str) -> None:
        """One webhook delivery attempt ended with `outcome`."""

    def ledger_spool(self, records: int) -> None:
        """The usage ledger's spool now holds `records` (the ledger calls this)."""

    def ledger_dropped(self, records: int = 1) -> None:
        """The usage ledger dropped `records` because its spool was full."""


class PrometheusMetrics(Metrics):
    """Records into Prometheus families on a registry of its own."""

    enabled = True

    def __init__(self, *, max_tenants: int, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.series = s = Series.on(self.registry)
        self._tenants = TenantCap(max_tenants)
        self._hits = {tier: s.cache_lookups.labels("hit", tier) for tier in ("l1", "l2")}
        self._miss = s.cache_lookups.labels("miss", "none")
        self._bypass = s.cache_lookups.labels("bypass", "none")
        self._coalesced = {scope: s.coalesced.labels(scope) for scope in ("process", "processes")}
        self._http: dict[tuple[str, str, int], Any] = {}
        self._upstream: dict[tuple[str, str | None], tuple[Any, Any]] = {}
        self._token_usage: dict[str, tuple[Any, Any]] = {}
        self._spent: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        self._jobs: dict[str, Any] = {}
        self._stages: dict[str, Any] = {}
        self._webhooks: dict[str, Any] = {}

    def http(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP request answered, by route pattern."""
        verb = method if method in _METHODS else "other"
        child = self._http.get((route, verb, status))
        if child is None:
            child = self._bound(
                self._http, (route, verb, status),
                lambda: self.series.http_duration.labels(route, verb, str(status)),
            )  # fmt: skip
        child.observe(seconds)

    def cache_hit(self, tier: str) -> None:
        """A request answered from the cache `tier` (l1, l2)."""
        self._hits[tier].inc()

    def cache_miss(self) -> None:
        """A request found no (fresh enough) answer in the cache."""
        self._miss.inc()

    def cache_bypass(self) -> None:
        """A request that asked not to be answered from the cache."""
        self._bypass.inc()

    def coalesced(self, scope: str) -> None:
        """A request answered by an identical request's call (`process` or `processes`)."""
        self._coalesced[scope].inc()

    def upstream(
        self, spec: "ModelSpec", seconds: float, error: str | None, usage: "Usage | None"
    ) -> None:
        """One upstream call to `spec`'s deployment: how long, its error type if it failed."""
        name = spec.deployment
        calls, duration = self._upstream.get((name, error)) or self._bound(
            self._upstream, (name, error), lambda: self._upstream_children(spec, error)
        )
        calls.inc()
        duration.observe(seconds)
        if usage is not None:
            tokens_in, tokens_out = self._token_usage.get(name) or self._bound(
                self._token_usage, name, lambda: self._token_children(spec)
            )
            tokens_in.observe(usage.input_tokens)
            tokens_out.observe(usage.output_tokens)

    def spent(self, model: str, tenant: str, usage: "Usage", cost: "Cost") -> None:
        """Tokens and cost an answer spent, by the model answering and the tenant asking."""
        label = self._tenants.label(tenant)
        key = (model, label)
        children = self._spent.get(key)
        if children is None:
            s = self.series
            children = self._bound(
                self._spent, key,
                lambda: (
                    s.tokens.labels(model, label, "input"),
                    s.tokens.labels(model, label, "output"),
                    s.cost.labels(model, label),
                ),
            )  # fmt: skip
        tokens_in, tokens_out, dollars = children
        tokens_in.inc(usage.input_tokens)
        tokens_out.inc(usage.output_tokens)
        dollars.inc(cost.total_usd)

    def breaker(self, deployment: str, state: str) -> None:
        """A deployment's circuit entered `state` (closed, half_open, open)."""
        self.series.breaker_state.labels(deployment).set(BREAKER_STATES[state])
        self.series.breaker_transitions.labels(deployment, state).inc()

    def rate_limited(self, deployment: str) -> None:
        """A deployment was passed over: its rate limit was full."""
        self.series.rate_limited.labels(deployment).inc()

    def rate_limit_wait(self, path: str, seconds: float) -> None:
        """A request waits `seconds` for room under a rate limit (`sync` or `job`)."""
        self.series.rate_limit_wait.labels(path).observe(seconds)

    def job(self, state: str) -> None:
        """A job entered `state`."""
        child = self._jobs.get(state) or self._bound(
            self._jobs, state, lambda: self.series.jobs.labels(state)
        )
        child.inc()

    def job_stage(self, stage: str) -> None:
        """A job started `stage`."""
        child = self._stages.get(stage) or self._bound(
            self._stages, stage, lambda: self.series.job_stages.labels(stage)
        )
        child.inc()

    def queue_depth(self, queue: str, messages: int) -> None:
        """`messages` wait in the stage queue `queue`."""
        self.series.queue_messages.labels(queue).set(messages)

    def webhook(self, outcome: str) -> None:
        """One webhook delivery attempt ended with `outcome`."""
        child = self._webhooks.get(outcome) or self._bound(
            self._webhooks, outcome, lambda: self.series.webhook_deliveries.labels(outcome)
        )
        child.inc()

    def ledger_spool(self, records: int) -> None:
        """The usage ledger's spool now holds `records` (the ledger calls this)."""
        self.series.ledger_spool.set(records)

    def ledger_dropped(self, records: int = 1) -> None:
        """The usage ledger dropped `records` because its spool was full."""
        self.series.ledger_dropped.inc(records)

    def _upstream_children(self, spec: "ModelSpec", error: str | None) -> tuple[Any, Any]:
        s = self.series
        provider, operation = _otel_names(spec)
        return (
            s.upstream_calls.labels(spec.deployment, error or "ok"),
            s.operation_duration.labels(operation, provider, spec.provider_model, error or ""),
        )

    def _token_children(self, spec: "ModelSpec") -> tuple[Any, Any]:
        provider, operation = _otel_names(spec)
        usage = self.series.token_usage
        return (
            usage.labels(operation, provider, "input", spec.provider_model),
            usage.labels(operation, provider, "output", spec.provider_model),
        )

    @staticmethod
    def _bound(cache: dict[Any, Any], key: Any, bind: Callable[[], Any]) -> Any:
        """Bind a label child once and keep it under `key`."""
        child = cache[key] = bind()
        return child


def _otel_names(spec: "ModelSpec") -> tuple[str, str]:
    """The OpenTelemetry provider and operation names of a deployment's calls."""
    return (
        _OTEL_PROVIDERS.get(spec.provider, spec.provider),
        _OTEL_OPERATIONS.get(spec.provider, "chat"),
    )
