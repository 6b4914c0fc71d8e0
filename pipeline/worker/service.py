"""The Celery side of one process: task runners, and the bridge plus worker that feed them."""

import time
from typing import Any

import structlog
from celery import Celery

from handlers import StageContext
from handlers.webhook_delivery import WebhookContext, deliver
from pipeline.bus.admission import Admission, Admitter
from pipeline.bus.bridge import Bridge
from pipeline.bus.connection import broker_scheme
from pipeline.bus.topology import Topology
from pipeline.settings import Settings
from pipeline.worker.celery_app import QUIET_REPR, WEBHOOK_TASK, create_celery, job_chain
from pipeline.worker.embedded import EmbeddedWorker, Pool
from pipeline.worker.hops import hop_delay, max_hop_s
from pipeline.worker.loop import LoopRunner
from pipeline.worker.prefork import ChildFactory, PreforkChildren, check_prefork
from pipeline.worker.steps import run_step
from schemas import StageEnvelope
from schemas.webhooks import DeliveryTask, Outcome

# Bridge-side waits: admission only touches the job store and the bus.
_ADMIT_TIMEOUT_S = 30.0

log = structlog.get_logger("promptbus.worker")


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
        self._max_hop_s = max_hop_s(settings)
        self.celery: Celery = create_celery(settings, topology, self._run_step, self._run_webhook)

    @property
    def step_timeout_s(self) -> float:
        """The longest one step may run."""
        return self._step_timeout_s

    def adopt(self, other: "TaskRunner") -> None:
        """Run this app's tasks on `other`'s context and loop (a prefork child's own)."""
        self._ctx, self._webhooks, self._runner = other._ctx, other._webhooks, other._runner

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
        wait_s = hop_delay(task.not_before, now, self._max_hop_s)
        if wait_s is not None:
            return payload, wait_s
        attempt = self._runner.run(deliver(task, self._webhooks), self._webhook_timeout_s)
        if attempt is None or attempt.outcome is not Outcome.RETRYING:
            return None
        wait_s = attempt.next_attempt_in_s or 0.0
        retry = task.model_copy(update={"attempt": task.attempt + 1, "not_before": now + wait_s})
        return retry.model_dump(mode="json"), min(wait_s, self._max_hop_s)


class JobWorker:
    """The bridge consumer and an in-process Celery worker (threads, or prefork children)."""

    def __init__(
        self,
        settings: Settings,
        topology: Topology,
        tasks: TaskRunner,
        admitter: Admitter,
        runner: LoopRunner,
        *,
        pool: Pool = "threads",
        child_runtime: ChildFactory | None = None,
    ) -> None:
        self._settings = settings
        self._tasks = tasks
        self._runner = runner
        self._admitter = admitter
        self._bridge = Bridge(settings, topology, admit=self._admit, start_chain=tasks.start_chain)
        self._children: PreforkChildren | None = None
        if pool == "prefork":
            check_prefork(settings)
            if child_runtime is None:
                raise ValueError("a prefork pool needs a way to build each child's runtime")
            self._children = PreforkChildren(
                tasks, child_runtime, gc_gen0_threshold=settings.gc_gen0_threshold
            )
        self._worker = EmbeddedWorker(
            tasks.celery, concurrency=settings.worker_concurrency, pool=pool
        )

    def start(self) -> None:
        """Start the Celery worker, then the bridge that feeds it."""
        warning = visibility_warning(self._settings, self._tasks.step_timeout_s)
        if warning is not None:
            log.warning(warning)
        if self._children is not None:
            self._children.connect()
        self._worker.start()
        self._bridge.start()

    def stop(self) -> None:
        """Stop taking events, then let in-flight tasks finish."""
        self._bridge.stop()
        self._worker.stop()
        if self._children is not None:
            self._children.disconnect()

    def _admit(self, body: bytes) -> Admission:
        return self._runner.run(self._admitter.admit(body), _ADMIT_TIMEOUT_S)


def visibility_warning(settings: Settings, step_timeout_s: float) -> str | None:
    """A warning when a Redis broker would hand a task still running to a second worker."""
    visibility_s = settings.redis_visibility_timeout_s
    if broker_scheme(settings) != "redis" or visibility_s >= step_timeout_s:
        return None
    return (
        f"PROMPTBUS_REDIS_VISIBILITY_TIMEOUT_S={visibility_s} is below the {step_timeout_s:g} s "
        "a step may run: a slower step is handed to another worker while it still runs "
        "(its job still completes once, but the upstream call may be made twice)"
    )
