"""The batch bench's baseline: a bare Celery group, one task per item making the LangChain call."""

from __future__ import annotations

from typing import Any, Final

from _bare_celery import (
    ClientStep,
    bare_completions,
    bare_queue_name,
    configure,
    publish_completion,
    start_bare_worker,
)
from celery import Celery, group
from celery.canvas import Signature
from kombu.entity import Exchange, Queue

ITEM_TASK: Final = "bench.bare.item"
# The queue of the pipeline bench's generate family: the clean-up of _broker.py knows it.
ITEM_FAMILY: Final = "generate"


def create_bare_group(url: str, suffix: str, concurrency: int, emulator_url: str | None) -> Celery:
    """A Celery app configured as promptbus's with one task: the item's LangChain call to
    the emulator (without `emulator_url`: none), then its completion message published."""
    app = Celery("promptbus-bench-bare-group", broker=url, set_as_current=False)
    name = bare_queue_name(ITEM_FAMILY, suffix)
    queue = Queue(name, exchange=Exchange(name, type="direct", durable=True), routing_key=name)
    configure(app, url, [queue], {ITEM_TASK: {"queue": name}}, concurrency)
    completions = bare_completions(suffix)
    step = ClientStep(emulator_url) if emulator_url else None

    def item(payload: dict[str, Any]) -> None:
        if step is not None:
            step(payload)
        publish_completion(app, completions, payload["job_id"])

    app.task(name=ITEM_TASK, acks_late=True, shared=False)(item)
    return app


def bare_group(app: Celery, run_id: str, prompts: list[str]) -> Signature:
    """The group of one task per prompt, job ids `{run_id}.{n}`."""
    return group(
        app.signature(ITEM_TASK, args=({"job_id": job_id, "prompt": prompt},), task_id=job_id)
        for job_id, prompt in ((f"{run_id}.{n}", prompt) for n, prompt in enumerate(prompts))
    )


def run_bare_group_worker(url: str, suffix: str, concurrency: int, emulator_url: str) -> None:
    """A worker of the group on `concurrency` threads, each task's call handed to one event
    loop (as promptbus runs its stages), so at most `concurrency` calls are in flight."""
    start_bare_worker(
        create_bare_group(url, suffix, concurrency, emulator_url), concurrency, "bench-bare-group"
    )
