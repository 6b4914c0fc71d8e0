"""Resilience around the generate stage: retries, rate limits, circuit breakers, routing."""

from collections.abc import Mapping

from opentelemetry.trace import Tracer

from pipeline.metrics import Metrics
from pipeline.providers.base import ChatProvider
from pipeline.resilience.breaker import CircuitBreaker
from pipeline.resilience.load import DeploymentLoad
from pipeline.resilience.ratelimit import RateLimiter
from pipeline.resilience.retry import RetryPolicy
from pipeline.resilience.router import Router
from pipeline.settings import Settings


def build_router(
    settings: Settings,
    providers: Mapping[str, ChatProvider],
    limiter: RateLimiter,
    metrics: Metrics | None = None,
    tracer: Tracer | None = None,
) -> Router:
    """The router the settings describe, over `providers`, counting rates with `limiter`."""
    metrics = metrics or Metrics()
    return Router(
        providers,
        policy=RetryPolicy.from_settings(settings),
        breaker=CircuitBreaker(
            failures=settings.breaker_failures,
            window_s=settings.breaker_window_s,
            cooldown_s=settings.breaker_cooldown_s,
            on_change=metrics.breaker,
        ),
        limiter=limiter,
        load=DeploymentLoad(),
        window_s=settings.rate_limit_window_s,
        rate_limit_wait_s=settings.rate_limit_wait_s,
        metrics=metrics,
        tracer=tracer,
    )
