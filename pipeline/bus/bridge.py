"""The bridge: consumes request events and starts one Celery chain per admitted job."""

import hashlib
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from contextlib import suppress

import structlog
from kombu.connection import Connection
from kombu.exceptions import OperationalError
from kombu.message import Message
from kombu.messaging import Producer
from redis.exceptions import RedisError

from pipeline.bus.admission import Admission
from pipeline.bus.connection import HEARTBEAT_RATE, connect
from pipeline.bus.topology import DEAD_LETTER_ROUTING_KEY, REASON_HEADER, Topology
from pipeline.cache.redis_tier import RedisDown
from pipeline.errors import BrokerUnavailable, ServiceBusy
from pipeline.settings import Settings
from schemas import StageEnvelope

log = structlog.get_logger("promptbus.bridge")

_RECONNECT_MIN_S = 0.1
_RECONNECT_MAX_S = 5.0
# How long one wait for events lasts: the heartbeat check between two waits must run at least
# every interval / HEARTBEAT_RATE, which is 0.5 s or more (heartbeats come in whole seconds).
_DRAIN_S = 0.25
# Failures of the infrastructure (Redis, the broker, a busy store) are waited out: the event
# goes back to the queue, however long that takes. Any other failure to admit an event is its
# own (a poison event): after this many tries it is dead-lettered.
_TRANSIENT = (OSError, RedisError, RedisDown, OperationalError, BrokerUnavailable, ServiceBusy)
ADMIT_MAX_ATTEMPTS = 5
_POISON_TRACKED = 1024


class Bridge:
    """A consumer thread on `promptbus.requests`, with its own connection."""

    def __init__(
        self,
        settings: Settings,
        topology: Topology,
        *,
        admit: Callable[[bytes], Admission],
        start_chain: Callable[[StageEnvelope], None],
    ) -> None:
        self._settings = settings
        self._topology = topology
        self._admit = admit
        self._start_chain = start_chain
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._backoff_s = _RECONNECT_MIN_S
        self._failures: OrderedDict[bytes, int] = OrderedDict()
        self._admit_backoff_s = _RECONNECT_MIN_S
        self._thread = threading.Thread(target=self._run, name="promptbus-bridge", daemon=True)

    def start(self, wait_s: float = 10.0) -> None:
        """Start consuming; waits until the queues are declared (or `wait_s` passed)."""
        self._thread.start()
        self._ready.wait(wait_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the event in hand."""
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            connection = connect(self._settings)
            try:
                self._consume(connection)
            except Exception as exc:
                # A close that ignores a broken connection's errors; on a silent one, each of its
                # waits ends at the connection's I/O bound (a heartbeat interval).
                connection.collect()
                wait_s = self._backoff_s
                log.warning(
                    "bridge lost the broker; reconnecting",
                    error=f"{type(exc).__name__}: {exc}",
                    wait_s=wait_s,
                )
                self._stop.wait(wait_s)
                self._backoff_s = min(wait_s * 2, _RECONNECT_MAX_S)
            else:
                connection.release()

    def _consume(self, connection: Connection) -> None:
        topology = self._topology
        channel = connection.channel()
        for entity in (topology.requests_queue, topology.dead_letter_queue):
            entity.bind(channel).declare()
        producer = Producer(channel)
        # Handle messages after a drain, never within it: publishing a dead letter waits for the
        # broker's confirm, and on amqp that wait delivers (and so would handle) more messages
        # inside it; nested waits then take each other's confirms and the outer one never ends.
        received: deque[Message] = deque()
        with connection.Consumer(
            [topology.requests_queue], on_message=received.append, prefetch_count=64, accept=[]
        ):
            self._ready.set()
            self._backoff_s = _RECONNECT_MIN_S
            while not self._stop.is_set():
                while received and not self._stop.is_set():
                    self._handle(received.popleft(), producer)
                with suppress(TimeoutError):
                    connection.drain_events(timeout=_DRAIN_S)
                # Sends our heartbeats, and raises once the broker's have been missing for two
                # intervals (a connection gone silent, with no reset to tell): we reconnect then.
                connection.heartbeat_check(rate=HEARTBEAT_RATE)

    def _handle(self, message: Message, producer: Producer) -> None:
        body = message.body if isinstance(message.body, bytes) else message.body.encode()
        try:
            admission = self._admit(body)
        except _TRANSIENT as exc:
            # The store or the broker failed, not the event: back to the queue, and a pause
            # that grows while the failures last. The connection stays (it may be fine).
            wait_s = self._admit_backoff_s
            log.warning(
                "event not admitted; requeued", error=f"{type(exc).__name__}: {exc}", wait_s=wait_s
            )
            message.requeue()
            self._stop.wait(wait_s)
            self._admit_backoff_s = min(wait_s * 2, _RECONNECT_MAX_S)
            return
        except Exception as exc:
            self._poisoned(message, body, producer, exc)
            return
        self._admit_backoff_s = _RECONNECT_MIN_S
        if admission.dead_reason is not None:
            self._dead_letter(message, body, producer, admission.dead_reason)
        elif admission.envelope is not None:
            self._start_chain(admission.envelope)
        message.ack()

    def _poisoned(
        self, message: Message, body: bytes, producer: Producer, error: Exception
    ) -> None:
        """Requeue an event that failed to admit, or dead-letter it after the last try."""
        key = hashlib.sha256(body).digest()
        tries = self._failures.pop(key, 0) + 1
        reason = f"{type(error).__name__}: {error}"
        if tries < ADMIT_MAX_ATTEMPTS:
            self._failures[key] = tries
            while len(self._failures) > _POISON_TRACKED:
                self._failures.popitem(last=False)
            log.warning("event failed to admit; requeued", attempt=tries, error=reason)
            message.requeue()
            return
        self._dead_letter(message, body, producer, f"admission failed {tries} times: {reason}")
        message.ack()

    def _dead_letter(self, message: Message, body: bytes, producer: Producer, reason: str) -> None:
        log.info("event dead-lettered", reason=reason)
        producer.publish(
            body,
            exchange=self._topology.dead_letter_exchange,
            routing_key=DEAD_LETTER_ROUTING_KEY,
            content_type=message.content_type or "application/octet-stream",
            content_encoding=message.content_encoding or "binary",
            delivery_mode=2,
            headers={**(message.headers or {}), REASON_HEADER: reason[:1000]},
            declare=[self._topology.dead_letter_queue],
        )
