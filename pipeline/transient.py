"""Which failures are the infrastructure's for a moment (Redis, the broker, a full store).

A step, an admission or a delivery that meets one of them is tried again later; any other
failure is the request's own, or a bug, and ends the job with an error instead.
"""

from typing import Final

from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pipeline.errors import BrokerUnavailable, KeysUnavailable, ServiceBusy
from pipeline.redis_guard import RedisDown

TRANSIENT: Final = (
    OSError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
    RedisDown,
    OperationalError,
    BrokerUnavailable,
    ServiceBusy,
    KeysUnavailable,
)
