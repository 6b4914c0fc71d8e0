"""A Celery worker inside this process: on a thread pool (the embedded default) or prefork."""

import threading
import warnings
from typing import Literal

import structlog
from celery import Celery
from celery.exceptions import SecurityWarning, WorkerShutdown

Pool = Literal["threads", "prefork"]

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
        else:
            self._worker.stop(in_sighandler=False)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("celery worker did not stop in time", timeout_s=timeout_s)


def _request_shutdown() -> None:
    """Run on the worker's event loop: a warm shutdown, on the thread that owns the loop."""
    raise WorkerShutdown(0)
