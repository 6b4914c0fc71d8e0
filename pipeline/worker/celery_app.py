"""The Celery app: JSON only, late acks, one queue per stage family, thin task wrappers.

Every process builds the app (`create_celery`): an ingress queues webhook deliveries on it
and a bridge starts chains with it. Only a worker registers the task bodies
(`register_tasks`), once its stage context exists, so building the app needs none of it.
"""

import random
from collections.abc import Callable
from typing import Any, Final

import structlog
from celery import Celery, chain
from celery.canvas import Signature

from handlers.generate import StageDeferred
from pipeline.bus.connection import (
    HEARTBEAT_RATE,
    broker_url,
    liveness_options,
    transport_options,
)
from pipeline.bus.topology import Topology
from pipeline.settings import Settings
from pipeline.transient import TRANSIENT
from pipeline.worker.hops import max_hop_s
from schemas import StageEnvelope
from schemas.webhooks import DeliveryTask

log = structlog.get_logger("promptbus.worker")

# The chain's steps, in order, each with its stage family (and so its queue). The first
# stage, identify and cache lookup, runs where the job is dispatched (the bridge).
STEPS: Final = ("generate", "postprocess", "emit")
FAMILIES: Final = {"generate": "generate", "postprocess": "finish", "emit": "finish"}
WEBHOOK_TASK: Final = "promptbus.webhook"
WEBHOOK_FAMILY: Final = "webhook"

# Celery renders task arguments into every message for its logs; an envelope (and a
# chain's nested signatures) makes that rendering cost more than the task itself.
QUIET_REPR: Final = {"argsrepr": "(payload)", "kwargsrepr": "{}"}

# A step that meets Redis or the broker failing is retried on the broker with a growing,
# jittered pause (at most 10 s), this many times: about five minutes in all. A step that is
# still failing after that is left to the sweeper (it stays unfinished, so it stalls).
TRANSIENT_RETRIES: Final = 40
_TRANSIENT_BASE_S = 0.25
_TRANSIENT_MAX_S = 10.0

# A deferred step waits at most this long per hop (it re-checks and defers again if need be),
# below RabbitMQ's consumer timeout and the Redis visibility timeout (see pipeline.worker.hops).
STEP_WAIT_MAX_S: Final = 60.0

# How a worker rides out faults. It waits for its broker as long as it takes: a worker that
# gave up would stay up consuming nothing. A task running when the connection drops runs to
# its end; the broker hands its message out again (RabbitMQ at once, Redis after the
# visibility timeout) and the rerun finds the job finished. Cancelling it instead is not
# possible on threads, and on Redis would only wait out the visibility timeout.
RECOVERY: Final[dict[str, Any]] = {
    "broker_connection_retry": True,
    "broker_connection_max_retries": None,
    "worker_cancel_long_running_tasks_on_connection_loss": False,
    # A prefork child that died mid-task: its message is requeued once billiard stops
    # waiting for a result it may have sent (10 s by default); a rerun is harmless here.
    "worker_lost_wait": 2.0,
    # A prefork child builds its own runtime before it reports up (4 s by default).
    "worker_proc_alive_timeout": 30.0,
}

StepRunner = Callable[[str, dict[str, Any]], dict[str, Any]]
# A delivery attempt: None when done, else the next attempt's payload and its delay.
WebhookRunner = Callable[[dict[str, Any]], tuple[dict[str, Any], float] | None]


def task_name(step: str) -> str:
    """The Celery task name of a step."""
    return f"promptbus.{step}"


def create_celery(settings: Settings, topology: Topology) -> Celery:
    """The Celery app of `settings`, with its queues and routes but no task bodies yet."""
    app = Celery("promptbus", broker=broker_url(settings), set_as_current=False)
    families = {*FAMILIES.values(), WEBHOOK_FAMILY}
    queues = {family: topology.stage_queue(family) for family in families}
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        broker_transport_options={**transport_options(settings), **liveness_options(settings)},
        # The consumer's connection: its event loop checks heartbeats every interval / rate and
        # reconnects once the broker's have been missing for two intervals (a silent connection).
        broker_heartbeat=settings.broker_heartbeat_s,
        broker_heartbeat_checkrate=HEARTBEAT_RATE,
        broker_connection_retry_on_startup=True,
        task_queues=list(queues.values()),
        task_default_queue=queues["generate"].name,
        task_routes={
            **{task_name(step): {"queue": queues[f].name} for step, f in FAMILIES.items()},
            WEBHOOK_TASK: {"queue": queues[WEBHOOK_FAMILY].name},
        },
        # The embedded worker serves no remote control: no shared `celery.pidbox` exchange, so
        # deployments told apart by their bus suffix stay apart on one broker.
        worker_enable_remote_control=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_concurrency=settings.worker_concurrency,
        broker_pool_limit=settings.worker_concurrency,
        **RECOVERY,
    )
    return app


def register_tasks(
    app: Celery, settings: Settings, run_step: StepRunner, run_webhook: WebhookRunner
) -> None:
    """Give the app its task bodies: each step to `run_step`, each delivery to `run_webhook`."""
    # On Redis a countdown longer than the visibility timeout would run twice.
    wait_max_s = min(STEP_WAIT_MAX_S, max_hop_s(settings))
    for step in STEPS:
        _register_step(app, step, run_step, wait_max_s)
    _register_webhook(app, run_webhook)


def _register_step(app: Celery, step: str, run_step: StepRunner, wait_max_s: float) -> None:
    def task(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return run_step(step, payload)
        except StageDeferred as deferred:
            # The step waits on the broker, not in a worker: a retry with a countdown, the
            # same task id and the rest of the chain. The routing state it carries bounds
            # the count (attempt budget and deadline).
            args = (deferred.envelope.model_dump(mode="json", exclude_none=True),)
            countdown = min(deferred.delay_s, wait_max_s)
            raise self.retry(
                args=args, countdown=countdown, max_retries=None, **QUIET_REPR
            ) from None
        except TRANSIENT as exc:
            # Redis or the broker failed, not the job: the step runs again (the steps are
            # idempotent), from its own message, after a pause.
            tries = self.request.retries
            if tries >= TRANSIENT_RETRIES:
                raise
            countdown = random.uniform(0, min(_TRANSIENT_MAX_S, _TRANSIENT_BASE_S * 2**tries))
            log.warning(
                "step retried: the infrastructure failed",
                step=step,
                task_id=self.request.id,
                error=f"{type(exc).__name__}: {exc}",
                countdown_s=round(countdown, 3),
            )
            raise self.retry(countdown=countdown, max_retries=None, **QUIET_REPR) from None

    task.__name__ = task.__qualname__ = f"{step}_task"
    # shared=False: these closures belong to this app only, not to every app made later.
    # resultrepr_maxsize: Celery renders each return value (an envelope) for its logs.
    app.task(
        name=task_name(step),
        bind=True,
        acks_late=True,
        shared=False,
        resultrepr_maxsize=32,
        max_retries=None,
    )(task)


def _register_webhook(app: Celery, run_webhook: WebhookRunner) -> None:
    def webhook_task(task: Any, payload: dict[str, Any]) -> None:
        follow_up = run_webhook(payload)
        if follow_up is not None:
            next_payload, countdown_s = follow_up
            # A retry is a new message with a countdown: no worker sleeps, and a pending
            # retry lives on the broker across restarts. The schedule bounds the count.
            raise task.retry(
                args=(next_payload,), countdown=countdown_s, max_retries=None, **QUIET_REPR
            )

    # max_retries=None on the task itself: `retry(max_retries=None)` alone falls back to
    # Celery's default of 3 and would cut any longer schedule short.
    app.task(name=WEBHOOK_TASK, bind=True, acks_late=True, shared=False, max_retries=None)(
        webhook_task
    )


def step_task_id(job_id: str | None, step: str) -> str:
    """The Celery task id of one step of a job (stable, so a job's tasks can be found)."""
    return f"{job_id}.{step}"


def job_chain(app: Celery, envelope: StageEnvelope) -> Signature:
    """The Celery chain that runs a job's remaining steps, starting from `envelope`."""
    payload = envelope.model_dump(mode="json", exclude_none=True)
    first, *rest = STEPS
    signatures = [
        app.signature(
            task_name(first),
            args=(payload,),
            task_id=step_task_id(envelope.job_id, first),
            **QUIET_REPR,
        )
    ]
    for step in rest:
        signatures.append(
            app.signature(
                task_name(step), task_id=step_task_id(envelope.job_id, step), **QUIET_REPR
            )
        )
    return chain(*signatures)


class DeliveryQueue:
    """Queues webhook deliveries as Celery tasks (blocking Kombu I/O: call it off the loop)."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def __call__(self, task: DeliveryTask) -> None:
        """Queue one delivery."""
        payload = task.model_dump(mode="json")
        self._app.signature(WEBHOOK_TASK, args=(payload,)).apply_async(**QUIET_REPR)
