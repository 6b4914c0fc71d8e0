"""Delayed tasks wait on the broker in hops short enough that no broker redelivers them.

A task with a countdown sits unacknowledged in a worker until it is due. RabbitMQ closes
a channel that holds one past its consumer timeout (30 min by default); Redis hands it to
another worker once its visibility timeout has passed. Every countdown is therefore cut
into hops of at most `max_hop_s(settings)`; a task woken early re-checks and waits again.
"""

from pipeline.bus.connection import broker_scheme
from pipeline.settings import Settings

# Well under RabbitMQ's default consumer timeout of 30 minutes.
MAX_HOP_S = 600.0


def max_hop_s(settings: Settings) -> float:
    """The longest one countdown may be on this broker (half the visibility timeout on Redis)."""
    if broker_scheme(settings) == "redis":
        return min(MAX_HOP_S, settings.redis_visibility_timeout_s / 2)
    return MAX_HOP_S


def hop_delay(not_before: float | None, now: float, max_hop: float = MAX_HOP_S) -> float | None:
    """How long a delayed task must wait again before it is due; None when it is due."""
    if not_before is None or not_before <= now + 1:
        return None
    return min(not_before - now, max_hop)
