"""A Celery worker inside this process: on a thread pool (the embedded default) or prefork."""

import threading
import warnings
from time import monotonic
from typing import Final, Literal

import structlog
from celery import Celery
from celery.exceptions import SecurityWarning, WorkerShutdown

from pipeline.bus import memory_transport

Pool = Literal["threads", "prefork"]

# How often a stop interrupts the synchronous loop's wait again while joining it.
_JOIN_SLICE_S: Final = 0.05

log = structlog.get_logger("promptbus.worker")


class EmbeddedWorker:
    """Runs `app.Worker` on a daemon thread and stops it on request.

    With `pool="prefork"` the tasks run in `concurrency` child processes forked from that
    thread (see `pipeline.worker.prefork`); the consumer, and its acks, stay here.
    """

    def __init__(
        self, app: Celery, *, concurrency: int, pool: Pool = "threads", loglevel: str = "WARNING"
    ) -> None:
        # Celery warns about root because of pickle; this app accepts JSON only.
        warnings.filterwarnings(
            "ignore", message=".*superuser privileges", category=SecurityWarning
        )
        self._worker = app.Worker(
            pool=pool,
            concurrency=concurrency,
            loglevel=loglevel,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            redirect_stdouts=False,
            quiet=True,
            hostname=f"promptbus-embedded-{threading.get_native_id()}@localhost",
        )
        self._thread = threading.Thread(
            target=self._worker.start, name="promptbus-celery", daemon=True
        )

    def start(self) -> None:
        """Start consuming the stage queues."""
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish in-flight tasks (up to `timeout_s`) and stop."""
        hub = getattr(self._worker, "hub", None)
        if hub is not None and self._thread.is_alive():
            # An event-loop worker (amqp, redis) owns its connection on its thread: stopping it
            # from here would read that socket from two threads (on amqp, basic_cancel then waits
            # for ever). Ask the loop to shut down, as Celery's own signal handlers do.
            hub.call_soon(_request_shutdown)
            self._thread.join(timeout_s)
        else:
            self._worker.stop(in_sighandler=False)
            self._join_interrupting(timeout_s)
        if self._thread.is_alive():
            log.warning("celery worker did not stop in time", timeout_s=timeout_s)

    def _join_interrupting(self, timeout_s: float) -> None:
        """Join the synchronous loop (the memory transport's), cutting its waits short.

        That loop sees it is stopping only between drains of up to 2 s each; interrupting
        again each slice also catches a drain that began just after the previous one.
        """
        deadline = monotonic() + timeout_s
        while self._thread.is_alive() and (left := deadline - monotonic()) > 0:
            memory_transport.interrupt_waits()
            self._thread.join(min(_JOIN_SLICE_S, left))


def _request_shutdown() -> None:
    """Run on the worker's event loop: a warm shutdown, on the thread that owns the loop."""
    raise WorkerShutdown(0)
