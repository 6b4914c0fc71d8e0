"""Which Celery tasks this process's worker started and finished."""

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import signals


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
