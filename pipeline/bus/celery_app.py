"""The Celery app: JSON only, late acks, one queue per stage family; chains and deliveries.

Every process builds the app (`create_celery`): an ingress queues webhook deliveries on it
and a bridge starts chains with it. Only a worker gives it task bodies
(`pipeline.worker.celery_tasks`), once its stage context exists, so building the app, and
sending on it, needs none of them.
"""

from dataclasses import dataclass
from typing import Any, Final

from celery import Celery, chain, group
from celery.canvas import Signature

from pipeline.bus.connection import (
    HEARTBEAT_RATE,
    broker_url,
    liveness_options,
    transport_options,
)
from pipeline.bus.topology import Topology
from pipeline.settings import Settings
from schemas import StageEnvelope
from schemas.webhooks import DeliveryTask

# The chain's steps, in order, each with its stage family (and so its queue). The first
# stage, identify and cache lookup, runs where the job is dispatched (the bridge).
STEPS: Final = ("generate", "postprocess", "emit")
FAMILIES: Final = {"generate": "generate", "postprocess": "finish", "emit": "finish"}
WEBHOOK_TASK: Final = "promptbus.webhook"
WEBHOOK_FAMILY: Final = "webhook"
# Batch lanes (pipeline.batches.execution) on a queue of their own, apart from jobs' steps.
BATCH_TASK: Final = "promptbus.batch"
BATCH_FAMILY: Final = "batch"
# A provider batch's steps (pipeline.batches.provider), on the batch queue too.
PROVIDER_BATCH_TASK: Final = "promptbus.provider_batch"
# A chain job's steps (pipeline.worker.chain_driver), on the generate queue: they call models.
CHAIN_TASK: Final = "promptbus.chain"

# Celery renders task arguments into every message for its logs; an envelope (and a
# chain's nested signatures) makes that rendering cost more than the task itself.
QUIET_REPR: Final = {"argsrepr": "(payload)", "kwargsrepr": "{}"}

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
    # A prefork child builds its own services before it reports up (4 s by default).
    "worker_proc_alive_timeout": 30.0,
}


def task_name(step: str) -> str:
    """The Celery task name of a step."""
    return f"promptbus.{step}"


def create_celery(settings: Settings, topology: Topology) -> Celery:
    """The Celery app of `settings`, with its queues and routes but no task bodies yet."""
    app = Celery("promptbus", broker=broker_url(settings), set_as_current=False)
    families = {*FAMILIES.values(), WEBHOOK_FAMILY, BATCH_FAMILY}
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
            BATCH_TASK: {"queue": queues[BATCH_FAMILY].name},
            PROVIDER_BATCH_TASK: {"queue": queues[BATCH_FAMILY].name},
            CHAIN_TASK: {"queue": queues["generate"].name},
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


@dataclass(frozen=True, slots=True)
class ChainTask:
    """What one chain task runs: a job's step, or one chunk of a map step's items. A re-drive
    queues what follows without a claim (what was queued before was lost)."""

    job_id: str
    step: str
    chunk: int | None = None
    redrive: bool = False

    @classmethod
    def of(cls, payload: dict[str, Any]) -> "ChainTask":
        """The task a message's payload names."""
        chunk = payload.get("chunk")
        return cls(
            job_id=str(payload["job_id"]),
            step=str(payload["step"]),
            chunk=None if chunk is None else int(chunk),
            redrive=bool(payload.get("redrive", False)),
        )


def chain_step_task(
    app: Celery, job_id: str, step: str, *, chunk: int | None = None, redrive: bool = False
) -> Signature:
    """The task of one step of a chain job (of one chunk of a map step's items, if `chunk`)."""
    payload: dict[str, Any] = {"job_id": job_id, "step": step}
    if chunk is not None:
        payload["chunk"] = chunk
    if redrive:
        payload["redrive"] = True
    part = "" if chunk is None else f".{chunk}"
    return app.signature(
        CHAIN_TASK, args=(payload,), task_id=f"{job_id}.chain.{step}{part}", **QUIET_REPR
    )


def map_chunks(app: Celery, job_id: str, step: str, chunks: range) -> Signature:
    """The Celery group that runs a map step: one task per chunk of its items."""
    return group(chain_step_task(app, job_id, step, chunk=chunk) for chunk in chunks)


def batch_lanes(app: Celery, batch_id: str, chunks: range) -> Signature:
    """The Celery group that starts a batch: one lane task per chunk in `chunks`."""
    return group(lane_task(app, batch_id, chunk) for chunk in chunks)


def lane_task(app: Celery, batch_id: str, chunk: int) -> Signature:
    """The task of one chunk of a batch."""
    payload = {"batch_id": batch_id, "chunk": chunk}
    return app.signature(BATCH_TASK, args=(payload,), task_id=f"{batch_id}.{chunk}")


def provider_step(app: Celery, batch_id: str, poll: int) -> Signature:
    """The task of one step (poll `poll`) of a provider batch."""
    return app.signature(PROVIDER_BATCH_TASK, args=({"batch_id": batch_id, "poll": poll},))


class DeliveryQueue:
    """Queues webhook deliveries as Celery tasks (blocking Kombu I/O: call it off the loop)."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    def __call__(self, task: DeliveryTask) -> None:
        """Queue one delivery."""
        payload = task.model_dump(mode="json")
        self._app.signature(WEBHOOK_TASK, args=(payload,)).apply_async(**QUIET_REPR)
