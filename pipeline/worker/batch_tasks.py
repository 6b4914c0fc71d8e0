"""The batch lane task a worker registers: a chunk of a batch run on the stage loop."""

import random
import threading
from typing import Any, Final

import structlog
from celery import Celery

from pipeline.batches import BatchRunner, Lane
from pipeline.batches.execution import Enqueue
from pipeline.bus.celery_app import BATCH_TASK, QUIET_REPR, lane_task
from pipeline.bus.publisher import EventPublisher
from pipeline.transient import TRANSIENT
from pipeline.worker.loop import LoopRunner

log = structlog.get_logger("promptbus.worker")

# Redis or the broker failing: the lane is retried with a growing, jittered pause, this many
# times (about five minutes); the sweeper's expiry ends a batch left behind after that.
_TRANSIENT_RETRIES: Final = 40
_TRANSIENT_MAX_S: Final = 10.0


class LaneBody:
    """What a lane task runs on: a batch runner and its loop (a prefork child's own, adopted)."""

    def __init__(self, runner: BatchRunner, loop: LoopRunner, *, slots: int) -> None:
        self.runner, self.loop = runner, loop
        # Lanes this process runs at once (its pool's other threads stay for jobs).
        self.slots = threading.BoundedSemaphore(slots)

    def adopt(self, runner: BatchRunner, loop: LoopRunner) -> None:
        """Run lanes on another runner and loop (a prefork child's)."""
        self.runner, self.loop = runner, loop


def register_batch_task(app: Celery, body: LaneBody, timeout_s: float) -> None:
    """Give the app its batch lane task; a lane runs at most `timeout_s` (then again)."""

    def batch_task(self: Any, payload: dict[str, Any]) -> None:
        lane = Lane(str(payload["batch_id"]), int(payload["chunk"]))
        if not body.slots.acquire(blocking=False):
            # This worker's share for batches is taken: back to the broker, for any worker.
            raise self.retry(countdown=random.uniform(0.5, 1.5), max_retries=None)
        try:
            wait_s = body.loop.run(body.runner.run(lane), timeout_s)
        except TRANSIENT as exc:
            tries = self.request.retries
            if tries >= _TRANSIENT_RETRIES:
                raise
            countdown = random.uniform(0, min(_TRANSIENT_MAX_S, 0.25 * 2**tries))
            log.warning("batch lane retried", error=f"{type(exc).__name__}: {exc}")
            raise self.retry(countdown=countdown, max_retries=None, **QUIET_REPR) from None
        finally:
            body.slots.release()
        if wait_s is not None:
            # The tenant's leases are taken: the lane waits on the broker, not in a worker.
            raise self.retry(countdown=wait_s * random.uniform(1, 2), max_retries=None)

    app.task(name=BATCH_TASK, bind=True, acks_late=True, shared=False, max_retries=None)(batch_task)


def enqueuer(app: Celery, publisher: EventPublisher) -> Enqueue:
    """Queues a lane's next chunk through the bounded publisher."""

    async def enqueue(lane: Lane) -> None:
        await publisher.publish_chain(lane_task(app, lane.batch_id, lane.chunk))

    return enqueue
