"""The chain task a worker registers: one step (or chunk of a map) of a chain job."""

from typing import Any

import structlog
from celery import Celery

from pipeline.bus.celery_app import CHAIN_TASK, QUIET_REPR, ChainTask
from pipeline.transient import TRANSIENT
from pipeline.worker.celery_tasks import TRANSIENT_RETRIES, transient_pause
from pipeline.worker.chain_driver import ITEMS_PER_TASK, ChainDriver
from pipeline.worker.loop import LoopRunner

log = structlog.get_logger("promptbus.worker")


class ChainBody:
    """What a chain task runs on: a driver and its loop (a prefork child's own, adopted)."""

    def __init__(self, driver: ChainDriver, loop: LoopRunner) -> None:
        self.driver, self.loop = driver, loop

    def adopt(self, driver: ChainDriver, loop: LoopRunner) -> None:
        """Run chain tasks on another driver and loop (a prefork child's)."""
        self.driver, self.loop = driver, loop


def register_chain_task(app: Celery, body: ChainBody, step_timeout_s: float) -> None:
    """Give the app its chain task; one runs at most a few model calls' bounds."""
    timeout_s = step_timeout_s * ITEMS_PER_TASK

    def chain_task(self: Any, payload: dict[str, Any]) -> None:
        task = ChainTask.of(payload)
        try:
            body.loop.run(body.driver.run(task), timeout_s)
        except TRANSIENT as exc:
            # Redis or the broker failed, not the step: it runs again (it skips what is
            # recorded), from its own message, after a pause.
            tries = self.request.retries
            if tries >= TRANSIENT_RETRIES:
                raise
            countdown = transient_pause(tries)
            log.warning("chain task retried", step=task.step, error=type(exc).__name__)
            raise self.retry(countdown=countdown, max_retries=None, **QUIET_REPR) from None

    app.task(name=CHAIN_TASK, bind=True, acks_late=True, shared=False, max_retries=None)(chain_task)
