"""The Celery side of one process: task runners, and the bridge plus worker that feed them."""

import time
from typing import Any

from celery import Celery

from handlers import StageContext
from handlers.webhook_delivery import WebhookContext, deliver
from pipeline.bus.admission import Admission, Admitter
from pipeline.bus.bridge import Bridge
from pipeline.bus.topology import Topology
from pipeline.settings import Settings
from pipeline.worker.celery_app import QUIET_REPR, WEBHOOK_TASK, create_celery, job_chain
from pipeline.worker.embedded import EmbeddedWorker
from pipeline.worker.loop import LoopRunner
from pipeline.worker.steps import run_step
from schemas import StageEnvelope
from schemas.webhooks import DeliveryTask, Outcome

# Bridge-side waits: admission only touches the job store and the bus.
_ADMIT_TIMEOUT_S = 30.0
# A delayed task sits unacknowledged in a worker until due: RabbitMQ closes a channel
# holding one past its consumer timeout (30 min by default), and Redis hands it out
# again after its visibility timeout. Long waits are therefore made in hops.
MAX_HOP_S = 600.0


def hop_delay(not_before: float | None, now: float) -> float | None:
    """How long a delayed task must wait again before it is due; None when it is due."""
    if not_before is None or not_before <= now + 1:
        return None
    return min(not_before - now, MAX_HOP_S)


class TaskRunner:
    """The Celery app; its tasks run the async stages on `runner`'s loop."""

    def __init__(
        self,
        settings: Settings,
        topology: Topology,
        ctx: StageContext,
        webhooks: WebhookContext,
        runner: LoopRunner,
    ) -> None:
        self._ctx = ctx
        self._webhooks = webhooks
        self._runner = runner
        self._step_timeout_s = settings.provider_timeout_s + 30
        self._webhook_timeout_s = settings.webhook_timeout + 30
        self.celery: Celery = create_celery(settings, topology, self._run_step, self._run_webhook)

    def start_chain(self, envelope: StageEnvelope) -> None:
        """Queue a job's chain of steps."""
        job_chain(self.celery, envelope).apply_async()

    def enqueue_delivery(self, task: DeliveryTask) -> None:
        """Queue one webhook delivery."""
        payload = task.model_dump(mode="json")
        self.celery.signature(WEBHOOK_TASK, args=(payload,)).apply_async(**QUIET_REPR)

    def _run_step(self, step: str, payload: dict[str, Any]) -> dict[str, Any]:
        envelope = StageEnvelope.model_validate(payload)
        result = self._runner.run(run_step(step, envelope, self._ctx), self._step_timeout_s)
        return result.model_dump(mode="json", exclude_none=True)

    def _run_webhook(self, payload: dict[str, Any]) -> tuple[dict[str, Any], float] | None:
        task = DeliveryTask.model_validate(payload)
        now = time.time()
        wait_s = hop_delay(task.not_before, now)
        if wait_s is not None:
            return payload, wait_s
        attempt = self._runner.run(deliver(task, self._webhooks), self._webhook_timeout_s)
        if attempt is None or attempt.outcome is not Outcome.RETRYING:
            return None
        wait_s = attempt.next_attempt_in_s or 0.0
        retry = task.model_copy(update={"attempt": task.attempt + 1, "not_before": now + wait_s})
        return retry.model_dump(mode="json"), min(wait_s, MAX_HOP_S)


class JobWorker:
    """The bridge consumer and an in-process Celery worker on threads."""

    def __init__(
        self,
        settings: Settings,
        topology: Topology,
        tasks: TaskRunner,
        admitter: Admitter,
        runner: LoopRunner,
    ) -> None:
        self._runner = runner
        self._admitter = admitter
        self._bridge = Bridge(settings, topology, admit=self._admit, start_chain=tasks.start_chain)
        self._worker = EmbeddedWorker(tasks.celery, concurrency=settings.worker_concurrency)

    def start(self) -> None:
        """Start the Celery worker, then the bridge that feeds it."""
        self._worker.start()
        self._bridge.start()

    def stop(self) -> None:
        """Stop taking events, then let in-flight tasks finish."""
        self._bridge.stop()
        self._worker.stop()

    def _admit(self, body: bytes) -> Admission:
        return self._runner.run(self._admitter.admit(body), _ADMIT_TIMEOUT_S)
