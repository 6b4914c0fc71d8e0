"""Coalescing: identical requests in flight share one upstream call, in one process or many."""

from pipeline.coalesce.across_processes import RedisSingleFlight
from pipeline.coalesce.in_process import SingleFlight

__all__ = ["RedisSingleFlight", "SingleFlight"]
