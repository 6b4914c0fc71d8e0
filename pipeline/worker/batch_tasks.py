"""The batch tasks a worker registers, run on the stage loop: a gateway batch's lane (a
chunk of its items) and a provider batch's step (a submit or a poll)."""

import random
import threading
from typing import Any, Final

import structlog
from celery import Celery

from pipeline.batches import BatchRunner, Lane
from pipeline.batches.execution import Enqueue
from pipeline.batches.provider import EnqueuePoll, ProviderRunner
from pipeline.bus.celery_app import (
    BATCH_TASK,
    PROVIDER_BATCH_TASK,
    QUIET_REPR,
    lane_task,
    provider_step,
)
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


class StepBody:
    """What a provider batch's step runs on: a provider runner and its loop."""

    def __init__(self, runner: ProviderRunner, loop: LoopRunner) -> None:
        self.runner, self.loop = runner, loop

    def adopt(self, runner: ProviderRunner, loop: LoopRunner) -> None:
        """Run steps on another runner and loop (a prefork child's)."""
        self.runner, self.loop = runner, loop


def register_provider_task(app: Celery, body: StepBody, timeout_s: float) -> None:
    """Give the app its provider batch step task; a step runs at most `timeout_s`.

    A step that wants the next poll is queued again (`retry`, with the next poll's number)
    with the wait as its countdown: it waits on the broker, not in a worker.
    """

    def provider_task(self: Any, payload: dict[str, Any]) -> None:
        batch_id, poll = str(payload["batch_id"]), int(payload["poll"])
        # Tries of this step that met a failing Redis or broker (polls retry too, so
        # Celery's own count of retries is not it).
        tries = int(payload.get("tries", 0))
        try:
            wait_s = body.loop.run(body.runner.run(batch_id, poll), timeout_s)
        except TRANSIENT as exc:
            if tries >= _TRANSIENT_RETRIES:
                raise  # the sweeper re-arms the batch once its poll is overdue
            countdown = random.uniform(0, min(_TRANSIENT_MAX_S, 0.25 * 2**tries))
            log.warning("provider batch step retried", error=f"{type(exc).__name__}: {exc}")
            again = ({"batch_id": batch_id, "poll": poll, "tries": tries + 1},)
            raise self.retry(args=again, countdown=countdown, max_retries=None) from None
        if wait_s is not None:
            following = ({"batch_id": batch_id, "poll": poll + 1},)
            raise self.retry(args=following, countdown=wait_s, max_retries=None)

    app.task(name=PROVIDER_BATCH_TASK, bind=True, acks_late=True, shared=False, max_retries=None)(
        provider_task
    )


def poll_enqueuer(app: Celery, publisher: EventPublisher) -> EnqueuePoll:
    """Queues a provider batch's step through the bounded publisher."""

    async def enqueue(batch_id: str, poll: int) -> None:
        await publisher.publish_chain(provider_step(app, batch_id, poll))

    return enqueue
