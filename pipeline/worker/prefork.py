"""Prefork pool children: each builds its own event loop and stage context after the fork.

A forked child inherits the parent's memory but none of its threads: the parent's event
loop, publisher threads and broker and Redis connections are unusable there. So each child,
once forked (Celery's `worker_process_init`), starts a loop of its own, builds services of
its own on it (without a worker) and points the tasks it runs at them; when it exits
(`worker_process_shutdown`) it stops them. The bridge stays in the parent.

Each child records its metrics in files of its own in the run's multiprocess directory
(prometheus_client notices the fork); the parent's /metrics sums them. A child that exits
forgets its live gauges; the parent forgets those of a child killed outright at its next
scrape.
"""

import os
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from celery import signals

from pipeline import heap, metrics_files
from pipeline.bus.connection import broker_scheme
from pipeline.providers.setup import on_emulator
from pipeline.settings import Settings
from pipeline.worker.loop import LoopRunner

if TYPE_CHECKING:
    from handlers import StageContext
    from pipeline.webhooks.context import WebhookContext
    from pipeline.worker.tasks import TaskRunner

log = structlog.get_logger("promptbus.worker")

# Building services opens no connection until used; this only bounds a stuck start.
_BUILD_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0


class ChildServices(Protocol):
    """What a child builds for itself: a stage and webhook context of its own, and a stop."""

    @property
    def ctx(self) -> "StageContext":
        """The context the child's steps run against."""
        ...

    @property
    def webhooks(self) -> "WebhookContext":
        """The context the child's webhook deliveries run against."""
        ...

    async def stop(self) -> None:
        """Close what the child built."""
        ...


ChildFactory = Callable[[], Coroutine[Any, Any, ChildServices]]


def check_prefork(settings: Settings) -> None:
    """Refuse a prefork pool on `memory://`: a child's messages would stay in the child."""
    if broker_scheme(settings) == "memory":
        raise ValueError(
            "PROMPTBUS_WORKER_POOL=prefork needs a broker shared by processes "
            "(PROMPTBUS_BROKER_URL=amqp://... or redis://...), not memory://"
        )


def child_settings(settings: Settings, emulator_url: str | None) -> Settings:
    """The settings a child builds with: the parent's, on the parent's built-in emulator if any.

    A child that started an emulator of its own would answer from another process than
    the one the start-up log names.
    """
    return settings if emulator_url is None else on_emulator(settings, emulator_url)


class PreforkChildren:
    """Hooks a pool's children so each runs `tasks` on services of its own."""

    def __init__(
        self,
        tasks: "TaskRunner",
        build: ChildFactory,
        *,
        gc_gen0_threshold: int,
        metrics_dir: Path | None = None,
        on_child: Callable[[ChildServices, LoopRunner], None] | None = None,
    ) -> None:
        self._tasks = tasks
        # Told of each child's services once built (the batch lanes adopt them too).
        self._on_child = on_child
        self._build = build
        self._gc_gen0_threshold = gc_gen0_threshold
        self._metrics_dir = metrics_dir
        self._child: tuple[ChildServices, LoopRunner] | None = None

    def connect(self) -> None:
        """Listen for children starting and ending (the signals fire in the child)."""
        signals.worker_process_init.connect(self._on_child_start, weak=False)
        signals.worker_process_shutdown.connect(self._on_child_end, weak=False)

    def disconnect(self) -> None:
        """Stop listening."""
        signals.worker_process_init.disconnect(self._on_child_start)
        signals.worker_process_shutdown.disconnect(self._on_child_end)

    def _on_child_start(self, **_: Any) -> None:
        # The parent's asyncio loop learns of its signals through this fd; the child shares
        # the pipe behind it, and a signal caught here must not wake (or stop) the parent.
        signal.set_wakeup_fd(-1)
        runner = LoopRunner()
        child = runner.run(self._build(), _BUILD_TIMEOUT_S)
        self._tasks.adopt(child.ctx, child.webhooks, runner)
        if self._on_child is not None:
            self._on_child(child, runner)
        self._child = (child, runner)
        # Forked before the parent settled its heap: the child settles its own, once built.
        heap.settle(self._gc_gen0_threshold)
        log.debug("pool child ready")

    def _on_child_end(self, **_: Any) -> None:
        if self._child is None:
            return
        child, runner = self._child
        self._child = None
        try:
            runner.run(child.stop(), _STOP_TIMEOUT_S)
        except Exception as exc:
            # The child is exiting anyway; its broker and Redis connections close with it.
            log.warning("pool child did not stop cleanly", error=f"{type(exc).__name__}: {exc}")
        runner.close()
        if self._metrics_dir is not None:
            metrics_files.mark_dead(os.getpid(), self._metrics_dir)
