"""The bridge: takes request events off the bus in batches and dispatches each one's job.

It runs on a thread of its own with its own broker connection (see `pipeline.bus.sources`),
in every worker process. Each batch is dispatched on the stage loop in one hand-off, the
events concurrently; the bridge then acks each event, dead-letters the refused ones and
requeues those whose dispatch met a failing infrastructure.
"""

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final

import structlog

from pipeline.bus.connection import broker_scheme
from pipeline.bus.dispatch import Dispatched, Fate
from pipeline.bus.redis_source import RedisSource, consumer_id
from pipeline.bus.sources import PREFETCH, Delivery, KombuSource, Source
from pipeline.bus.topology import Topology
from pipeline.settings import Settings
from pipeline.transient import TRANSIENT

log = structlog.get_logger("promptbus.bridge")

# Dispatches a batch of events (raw bodies, and headers that may carry a trace context):
# each one's fate, or the exception its dispatch raised.
BatchDispatch = Callable[[Sequence[Delivery]], Sequence[Dispatched | BaseException]]

_RECONNECT_MIN_S = 0.1
_RECONNECT_MAX_S = 5.0
# How long one wait for events lasts: liveness work between two waits must run at least every
# heartbeat interval / HEARTBEAT_RATE, which is 0.5 s or more (heartbeats come in whole seconds).
_RECEIVE_S: Final = 0.25
# A failure of another kind to dispatch an event is its own (a poison event): after this
# many tries it is dead-lettered.
DISPATCH_MAX_ATTEMPTS: Final = 5
_POISON_TRACKED = 1024


def open_source(settings: Settings, topology: Topology, consumer: str) -> Source:
    """The request queue of the configured broker."""
    if broker_scheme(settings) == "redis":
        return RedisSource(settings, topology, consumer)
    return KombuSource(settings, topology)


class Bridge:
    """A consumer thread on `promptbus.requests` that hands each batch to `dispatch`."""

    def __init__(self, settings: Settings, topology: Topology, *, dispatch: BatchDispatch) -> None:
        self._settings = settings
        self._topology = topology
        self._dispatch = dispatch
        # The same name across reconnects: on Redis, what it held is taken up again.
        self._consumer = consumer_id()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._backoff_s = _RECONNECT_MIN_S
        self._pause_s = _RECONNECT_MIN_S
        self._failures: OrderedDict[bytes, int] = OrderedDict()
        self._thread = threading.Thread(target=self._run, name="promptbus-bridge", daemon=True)

    def start(self, wait_s: float = 10.0) -> None:
        """Start consuming; waits until the queues are declared (or `wait_s` passed)."""
        self._thread.start()
        self._ready.wait(wait_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the batch in hand."""
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            source: Source | None = None
            try:
                source = open_source(self._settings, self._topology, self._consumer)
                self._ready.set()
                self._backoff_s = _RECONNECT_MIN_S
                while not self._stop.is_set():
                    batch = source.receive(PREFETCH, _RECEIVE_S)
                    if batch:
                        self._handle(batch, source)
                    source.beat()
            except Exception as exc:
                wait_s = self._backoff_s
                log.warning(
                    "bridge lost the broker; reconnecting",
                    error=f"{type(exc).__name__}: {exc}",
                    wait_s=wait_s,
                )
                self._stop.wait(wait_s)
                self._backoff_s = min(wait_s * 2, _RECONNECT_MAX_S)
            finally:
                if source is not None:
                    source.close()

    def _handle(self, batch: Sequence[Delivery], source: Source) -> None:
        fates = self._dispatch(batch)
        waited = False
        for delivery, fate in zip(batch, fates, strict=True):
            if isinstance(fate, Dispatched) and fate.fate is Fate.BUSY:
                # Another copy of the event is being dispatched: this one waits its turn.
                delivery.requeue()
                waited = True
            elif isinstance(fate, TRANSIENT):
                # The store or the broker failed, not the event: back to the queue, and a
                # pause that grows while the failures last. The connection stays (it may be
                # fine).
                log.warning(
                    "event not dispatched; requeued", error=f"{type(fate).__name__}: {fate}"
                )
                delivery.requeue()
                waited = True
            elif isinstance(fate, BaseException):
                self._poisoned(delivery, source, fate)
            else:
                if fate.fate is Fate.DEAD:
                    source.dead_letter(delivery, fate.reason or "refused")
                delivery.ack()
        if waited:
            self._stop.wait(self._pause_s)
            self._pause_s = min(self._pause_s * 2, _RECONNECT_MAX_S)
        else:
            self._pause_s = _RECONNECT_MIN_S

    def _poisoned(self, delivery: Delivery, source: Source, error: BaseException) -> None:
        """Requeue an event that failed to dispatch, or dead-letter it after the last try."""
        key = hashlib.sha256(delivery.body).digest()
        tries = self._failures.pop(key, 0) + 1
        reason = f"{type(error).__name__}: {error}"
        if tries < DISPATCH_MAX_ATTEMPTS:
            self._failures[key] = tries
            while len(self._failures) > _POISON_TRACKED:
                self._failures.popitem(last=False)
            log.warning("event failed to dispatch; requeued", attempt=tries, error=reason)
            delivery.requeue()
            return
        log.info("event dead-lettered", reason=reason)
        source.dead_letter(delivery, f"dispatch failed {tries} times: {reason}")
        delivery.ack()
