"""Kombu connections to the configured broker, tuned per transport."""

from typing import Any

from kombu.connection import Connection

from pipeline.settings import Settings


def transport_options(settings: Settings) -> dict[str, Any]:
    """Options for the broker's transport, shared by Kombu and Celery."""
    scheme = settings.broker_url.split("://", 1)[0]
    if scheme == "memory":
        # The memory transport polls; its default of 1 s would add a second per hop.
        return {"polling_interval": settings.memory_polling_interval_s}
    if scheme in ("amqp", "pyamqp"):
        # Publisher confirms: a publish returns only once the broker has the message.
        return {"confirm_publish": True}
    if scheme in ("redis", "rediss"):
        return {"visibility_timeout": settings.redis_visibility_timeout_s}
    return {}


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
