"""Prometheus metrics: the series (`series.py`), the hooks that record them, and `/metrics`.

The exposition (`pipeline.metrics.exposition`, aiohttp) is imported by the processes that
serve it, not from here: the stages record metrics without the web layer.
"""

from pipeline.metrics.jobs import MeteredJobStore
from pipeline.metrics.recorder import Metrics, PrometheusMetrics
from pipeline.metrics.tenants import OTHER, TenantCap
from pipeline.settings import Settings


def build_metrics(settings: Settings) -> Metrics:
    """The recorder the settings ask for: Prometheus, or nothing at all when metrics are off."""
    if not settings.metrics:
        return Metrics()
    return PrometheusMetrics(max_tenants=settings.metrics_max_tenants)


__all__ = [
    "OTHER",
    "MeteredJobStore",
    "Metrics",
    "PrometheusMetrics",
    "TenantCap",
    "build_metrics",
]
