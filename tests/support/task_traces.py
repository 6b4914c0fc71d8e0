"""What Celery's signals say this process did: tasks run by its worker, webhook tasks published."""

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from celery import signals

from pipeline.bus.celery_app import WEBHOOK_TASK


class TaskTrace:
    """The ids of the Celery tasks this process's worker started and finished."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self._lock = threading.Lock()

    def _on_prerun(self, task_id: str | None = None, **_: Any) -> None:
        with self._lock:
            self.started.append(str(task_id))

    def _on_postrun(self, task_id: str | None = None, **_: Any) -> None:
        with self._lock:
            self.finished.append(str(task_id))

    def started_for(self, job_id: str) -> list[str]:
        """Task ids started for a job (they are `{job_id}.{step}`)."""
        with self._lock:
            return [t for t in self.started if t.startswith(f"{job_id}.")]

    async def wait_finished(self, task_id: str, timeout_s: float = 20.0) -> None:
        """Poll, with a deadline, until the task with `task_id` has run."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                if task_id in self.finished:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} did not finish within {timeout_s:g}s")
            await asyncio.sleep(0.01)


@contextmanager
def traced_tasks() -> Iterator[TaskTrace]:
    """Record Celery task starts and ends while the block runs."""
    trace = TaskTrace()
    signals.task_prerun.connect(trace._on_prerun, weak=False)
    signals.task_postrun.connect(trace._on_postrun, weak=False)
    try:
        yield trace
    finally:
        signals.task_prerun.disconnect(trace._on_prerun)
        signals.task_postrun.disconnect(trace._on_postrun)


@dataclass(frozen=True)
class Published:
    """One webhook delivery task this process published (a first attempt or a retry)."""

    job_id: str
    endpoint_id: str | None
    attempt: int


class PublishTrace:
    """Webhook tasks published while the block runs, seen by Celery's publish signal.

    Deliveries are scheduled before a job is recorded as finished, so once a job has finished
    every first attempt it will ever get is in `published`.
    """

    def __init__(self) -> None:
        self._published: list[Published] = []
        self._lock = threading.Lock()

    def _on_publish(self, sender: str | None = None, body: Any = None, **_: Any) -> None:
        if sender != WEBHOOK_TASK:
            return
        args = body[0] if isinstance(body, tuple | list) else body.get("args", ())
        payload = args[0]
        with self._lock:
            self._published.append(
                Published(payload["job_id"], payload.get("endpoint_id"), payload["attempt"])
            )

    def for_job(self, job_id: str) -> list[Published]:
        with self._lock:
            return [p for p in self._published if p.job_id == job_id]


@contextmanager
def traced_publishes() -> Iterator[PublishTrace]:
    """Record webhook task publications while the block runs."""
    trace = PublishTrace()
    signals.before_task_publish.connect(trace._on_publish, weak=False)
    try:
        yield trace
    finally:
        signals.before_task_publish.disconnect(trace._on_publish)
