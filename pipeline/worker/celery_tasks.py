"""The Celery task bodies a worker registers: thin wrappers over the steps and deliveries."""

import random
from collections.abc import Callable
from typing import Any, Final

import structlog
from celery import Celery

from handlers.generate import StageDeferred
from pipeline.bus.celery_app import QUIET_REPR, STEPS, WEBHOOK_TASK, task_name
from pipeline.settings import Settings
from pipeline.transient import TRANSIENT
from pipeline.worker.hops import max_hop_s

log = structlog.get_logger("promptbus.worker")

# A step that meets Redis or the broker failing is retried on the broker with a growing,
# jittered pause (at most 10 s), this many times: about five minutes in all. A step that is
# still failing after that is left to the sweeper (it stays unfinished, so it stalls).
TRANSIENT_RETRIES: Final = 40
_TRANSIENT_BASE_S = 0.25
_TRANSIENT_MAX_S = 10.0

# A deferred step waits at most this long per hop (it re-checks and defers again if need be),
# below RabbitMQ's consumer timeout and the Redis visibility timeout (see pipeline.worker.hops).
STEP_WAIT_MAX_S: Final = 60.0

StepRunner = Callable[[str, dict[str, Any]], dict[str, Any]]
# A delivery attempt: None when done, else the next attempt's payload and its delay.
WebhookRunner = Callable[[dict[str, Any]], tuple[dict[str, Any], float] | None]


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
            countdown = transient_pause(tries)
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


def transient_pause(tries: int) -> float:
    """How long a task that met Redis or the broker failing waits before its next try."""
    return random.uniform(0, min(_TRANSIENT_MAX_S, _TRANSIENT_BASE_S * 2**tries))


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
