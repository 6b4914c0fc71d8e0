"""The task bodies a worker gives its Celery app: each runs async stages on the stage loop."""

import time
from typing import Any

from celery import Celery

from handlers import StageContext
from handlers.webhook_delivery import deliver as deliver_webhook
from pipeline.settings import Settings
from pipeline.webhooks.context import WebhookContext
from pipeline.worker.celery_tasks import register_tasks
from pipeline.worker.hops import hop_delay, max_hop_s
from pipeline.worker.loop import LoopRunner
from pipeline.worker.steps import run_step
from schemas import StageEnvelope
from schemas.webhooks import DeliveryTask, Outcome


class TaskRunner:
    """Runs the app's steps and deliveries on `runner`'s loop against `ctx`."""

    def __init__(
        self,
        settings: Settings,
        app: Celery,
        ctx: StageContext,
        webhooks: WebhookContext,
        runner: LoopRunner,
    ) -> None:
        self._ctx = ctx
        self._webhooks = webhooks
        self._runner = runner
        self._step_timeout_s = step_timeout_s(settings)
        self._webhook_timeout_s = settings.webhook_timeout + 30
        self._max_hop_s = max_hop_s(settings)
        register_tasks(app, settings, self._run_step, self._run_webhook)

    def adopt(self, ctx: StageContext, webhooks: WebhookContext, runner: LoopRunner) -> None:
        """Run the tasks on another context and loop (a prefork child's own)."""
        self._ctx, self._webhooks, self._runner = ctx, webhooks, runner

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
        attempt = self._runner.run(deliver_webhook(task, self._webhooks), self._webhook_timeout_s)
        if attempt is None or attempt.outcome is not Outcome.RETRYING:
            return None
        wait_s = attempt.next_attempt_in_s or 0.0
        retry = task.model_copy(update={"attempt": task.attempt + 1, "not_before": now + wait_s})
        return retry.model_dump(mode="json"), min(wait_s, self._max_hop_s)


def step_timeout_s(settings: Settings) -> float:
    """The longest one step may run: a provider call's bound and room for the rest."""
    return settings.provider_timeout_s + 30
