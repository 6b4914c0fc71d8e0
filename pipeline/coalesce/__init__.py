"""Coalescing: identical requests in flight share one upstream call, in one process or many."""

from pipeline.coalesce.across_processes import RedisSingleFlight
from pipeline.coalesce.in_process import SingleFlight
from pipeline.coalesce.streams import StreamFlight, StreamFlights

__all__ = ["RedisSingleFlight", "SingleFlight", "StreamFlight", "StreamFlights"]
