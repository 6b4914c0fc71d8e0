"""Kombu connections to the configured broker, tuned per transport."""

from typing import Any

from kombu.connection import Connection

from pipeline.settings import Settings

# Kombu's Redis transport sweeps unacknowledged messages back to their queues every
# `unacked_restore_interval` seconds, but scans only every `unacked_restore_throttle`-th
# sweep: 10 x 10 s by default, so a crashed worker's task would wait up to 100 s more than
# its visibility timeout. One scan per sweep, a sweep at most every 10 s (and about four
# per visibility timeout when that is short): a cheap ZRANGE under a mutex.
_RESTORE_INTERVAL_MAX_S = 10.0
_RESTORE_INTERVAL_MIN_S = 1.0


def broker_scheme(settings: Settings) -> str:
    """The broker's transport: `memory`, `amqp`, `redis`, ... (`pyamqp` and `rediss` folded)."""
    scheme = settings.broker_url.split("://", 1)[0]
    return {"pyamqp": "amqp", "rediss": "redis"}.get(scheme, scheme)


def transport_options(settings: Settings) -> dict[str, Any]:
    """Options for the broker's transport, shared by Kombu and Celery."""
    scheme = broker_scheme(settings)
    if scheme == "memory":
        # The memory transport polls; its default of 1 s would add a second per hop.
        return {"polling_interval": settings.memory_polling_interval_s}
    if scheme == "amqp":
        # Publisher confirms: a publish returns only once the broker has the message.
        return {"confirm_publish": True}
    if scheme == "redis":
        visibility_s = settings.redis_visibility_timeout_s
        return {
            "visibility_timeout": visibility_s,
            "unacked_restore_interval": restore_interval_s(visibility_s),
            "unacked_restore_throttle": 1,
            **_unacked_keys(settings.bus_suffix),
        }
    return {}


def restore_interval_s(visibility_timeout_s: float) -> float:
    """How often a Redis consumer sweeps unacknowledged messages past their visibility timeout."""
    return min(_RESTORE_INTERVAL_MAX_S, max(_RESTORE_INTERVAL_MIN_S, visibility_timeout_s / 4))


def _unacked_keys(suffix: str) -> dict[str, str]:
    # Kombu keeps every unacknowledged message of a Redis database in one hash, and each
    # consumer restores whatever in it is older than *its own* visibility timeout. A
    # deployment with its own bus suffix gets its own hash, so a short timeout in one never
    # redelivers another's work. No suffix keeps Kombu's names (nothing strands on upgrade).
    if not suffix:
        return {}
    return {
        "unacked_key": f"unacked{suffix}",
        "unacked_index_key": f"unacked_index{suffix}",
        "unacked_mutex_key": f"unacked_mutex{suffix}",
    }


def broker_url(settings: Settings) -> str:
    """The broker URL; `memory://` gets a host so Kombu does not warn about it."""
    return "memory://localhost/" if settings.broker_url == "memory://" else settings.broker_url


def connect(settings: Settings, *, connect_timeout_s: float | None = None) -> Connection:
    """A new (lazy) connection to the broker with bounded connect time."""
    return Connection(
        broker_url(settings),
        transport_options=transport_options(settings),
        connect_timeout=connect_timeout_s or settings.publish_timeout_s,
        heartbeat=0,
    )
