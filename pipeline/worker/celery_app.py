"""The Celery app: JSON only, late acks, one queue per stage family, thin task wrappers."""

from collections.abc import Callable
from typing import Any

from celery import Celery, chain
from celery.canvas import Signature

from pipeline.bus.connection import broker_url, transport_options
from pipeline.bus.topology import Topology
from pipeline.settings import Settings
from pipeline.worker.steps import CHAIN
from schemas import StageEnvelope

# Steps grouped into stage families, each family with its own queue.
FAMILIES = {"lookup": "lookup", "generate": "generate", "postprocess": "finish", "emit": "finish"}
WEBHOOK_TASK = "promptbus.webhook"
WEBHOOK_FAMILY = "webhook"

# Celery renders task arguments into every message for its logs; an envelope (and a
# chain's nested signatures) makes that rendering cost more than the task itself.
QUIET_REPR = {"argsrepr": "(payload)", "kwargsrepr": "{}"}

StepRunner = Callable[[str, dict[str, Any]], dict[str, Any]]
# A delivery attempt: None when done, else the next attempt's payload and its delay.
WebhookRunner = Callable[[dict[str, Any]], tuple[dict[str, Any], float] | None]


def task_name(step: str) -> str:
    """The Celery task name of a step."""
    return f"promptbus.{step}"


def create_celery(
    settings: Settings, topology: Topology, run_step: StepRunner, run_webhook: WebhookRunner
) -> Celery:
    """A Celery app whose tasks hand each step to `run_step`, each delivery to `run_webhook`."""
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
        broker_transport_options=transport_options(settings),
        broker_connection_retry_on_startup=True,
        task_queues=list(queues.values()),
        task_default_queue=queues["lookup"].name,
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
    )
    for step, _stage, _skip in CHAIN:
        _register(app, step, run_step)
    _register_webhook(app, run_webhook)
    return app


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


def _register(app: Celery, step: str, run_step: StepRunner) -> None:
    def task(payload: dict[str, Any]) -> dict[str, Any]:
        return run_step(step, payload)

    task.__name__ = task.__qualname__ = f"{step}_task"
    # shared=False: these closures belong to this app only, not to every app made later.
    # resultrepr_maxsize: Celery renders each return value (an envelope) for its logs.
    app.task(name=task_name(step), acks_late=True, shared=False, resultrepr_maxsize=32)(task)


def step_task_id(job_id: str | None, step: str) -> str:
    """The Celery task id of one step of a job (stable, so a job's tasks can be found)."""
    return f"{job_id}.{step}"


def job_chain(app: Celery, envelope: StageEnvelope) -> Signature:
    """The Celery chain that runs a job's steps, starting from `envelope`."""
    first, *rest = (app.signature(task_name(step)) for step, _stage, _skip in CHAIN)
    payload = envelope.model_dump(mode="json", exclude_none=True)
    job_id = envelope.job_id
    signatures = [
        first.clone(args=(payload,), task_id=step_task_id(job_id, CHAIN[0][0]), **QUIET_REPR)
    ]
    for (step, _stage, _skip), signature in zip(CHAIN[1:], rest, strict=True):
        signatures.append(signature.clone(task_id=step_task_id(job_id, step), **QUIET_REPR))
    return chain(*signatures)
