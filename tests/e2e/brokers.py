"""Job tests on real brokers: per-run bus names, bus taps, task traces and clean-up.

The pieces live in their own modules; this one gathers them, so tests import from one place.
"""

from tests.e2e.bus import (
    BROKER_URLS,
    BROKERS,
    CROSS_PROCESS_BROKERS,
    STAGE_FAMILIES,
    Bus,
    provisioned_bus,
)
from tests.e2e.bus_tap import BusTap, Delivery
from tests.e2e.job_env import JobEnv, job_env, new_id, serving
from tests.e2e.task_trace import TaskTrace, traced_tasks

__all__ = [
    "BROKERS",
    "BROKER_URLS",
    "CROSS_PROCESS_BROKERS",
    "STAGE_FAMILIES",
    "Bus",
    "BusTap",
    "Delivery",
    "JobEnv",
    "TaskTrace",
    "job_env",
    "new_id",
    "provisioned_bus",
    "serving",
    "traced_tasks",
]
