"""Kombu connections to the configured broker, tuned per transport."""

import socket
from typing import Any

from kombu.connection import Connection

from pipeline.bus import memory_transport
from pipeline.settings import Settings

memory_transport.register()

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
        # Consumers wake on each message (memory_transport.py); this bounds a wait between
        # checks, kombu's default of 1 s would be the delay of any wake-up missed.
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
    """The broker URL; `memory://` is kombu's memory transport woken by each message."""
    if broker_scheme(settings) == "memory":
        return f"{memory_transport.SCHEME}://localhost/"
    return settings.broker_url


# Heartbeat checks per heartbeat interval: Kombu asks for at least two, py-amqp sends a
# heartbeat every interval / rate, and Celery's `broker_heartbeat_checkrate` is the same.
HEARTBEAT_RATE = 2


def default_io_timeout_s(settings: Settings) -> float | None:
    """How long one read or write on a broker connection may block: a heartbeat interval.

    A broker answers a declare or a publish in milliseconds, and on a connection with
    heartbeats RabbitMQ sends one every half interval: a longer wait means a silent
    connection. None when heartbeats are off.
    """
    heartbeat_s = settings.broker_heartbeat_s
    return float(heartbeat_s) if heartbeat_s else None


def liveness_options(settings: Settings, *, publish_bound_s: float | None = None) -> dict[str, Any]:
    """Transport options that turn a silent broker connection (no reset, no answer) into an error.

    By default for long-lived connections (consumers, Celery's pool): each read and write
    bounded by `default_io_timeout_s`, nothing when heartbeats are off. With
    `publish_bound_s`, for a publisher that bounds each publish itself: each read and write
    within that bound, a connect within a third of it, and no retry inside the client.
    """
    io_s = publish_bound_s or default_io_timeout_s(settings)
    if io_s is None:
        return {}
    scheme = broker_scheme(settings)
    if scheme == "amqp":
        # py-amqp sets them as SO_RCVTIMEO / SO_SNDTIMEO: a blocking wait on a silent connection
        # (a declare, a publisher confirm outside the consumer's event loop) raises in the end.
        return {"read_timeout": io_s, "write_timeout": io_s}
    if scheme != "redis":
        return {}
    options: dict[str, Any] = {
        # Every command's reply (a publish, an ack, a restore sweep): none of them waits on the
        # server, as BRPOP's reply is read only once its socket is readable.
        "socket_timeout": io_s,
        "socket_connect_timeout": (
            settings.publish_timeout_s if publish_bound_s is None else publish_bound_s / 3
        ),
        # The kernel notices a peer gone for good (no ACKs) on idle pooled connections too.
        "socket_keepalive": True,
        "socket_keepalive_options": _keepalive(io_s),
        # A pooled connection that went silent while idle costs one timeout, then the command
        # runs on a fresh socket: failing it instead would restart a Celery consumer, and the
        # tasks it had reserved would wait out the visibility timeout. (A publisher retries
        # within its own bound.)
        "retry_on_timeout": publish_bound_s is None,
    }
    if settings.broker_heartbeat_s:
        # Kombu drops a BRPOP connection whose reply is this much overdue (checked as often),
        # and redis-py PINGs a pooled connection idle for longer before using it.
        options["health_check_interval"] = settings.broker_heartbeat_s
    return options


def _keepalive(within_s: float) -> dict[int, int]:
    # Probes from half the bound on, three of them: a dead peer is found within about the bound.
    idle_s, interval_s = max(1, int(within_s / 2)), max(1, int(within_s / 6))
    names = {"TCP_KEEPIDLE": idle_s, "TCP_KEEPINTVL": interval_s, "TCP_KEEPCNT": 3}
    return {getattr(socket, name): value for name, value in names.items() if hasattr(socket, name)}


def connect(settings: Settings, *, publish_bound_s: float | None = None) -> Connection:
    """A new (lazy) connection to the broker; a silent one is noticed (see `liveness_options`).

    By default a long-lived consumer's connection: it negotiates AMQP heartbeats, and its
    owner must call `heartbeat_check(rate=HEARTBEAT_RATE)` at least every interval / rate.
    With `publish_bound_s`, a publisher's, used now and then: no heartbeats (the broker would
    close it for those it never sends); its bounded I/O catches silence instead.
    """
    connect_s = settings.publish_timeout_s if publish_bound_s is None else publish_bound_s / 3
    liveness = liveness_options(settings, publish_bound_s=publish_bound_s)
    return Connection(
        broker_url(settings),
        transport_options={**transport_options(settings), **liveness},
        connect_timeout=connect_s,
        heartbeat=settings.broker_heartbeat_s if publish_bound_s is None else 0,
    )
