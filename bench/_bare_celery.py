"""The pipeline bench's baseline: a bare Celery chain configured as promptbus's, doing nothing."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

from _gemini_client import gemini_client, settle_heap
from celery import Celery, chain, signals
from celery.canvas import Signature
from kombu.entity import Exchange, Queue

T = TypeVar("T")
Step = Callable[[dict[str, Any]], dict[str, Any]]
CLIENT_TIMEOUT_S: Final = 60.0

# promptbus's default Settings.worker_concurrency; the bare worker gets the same.
WORKER_CONCURRENCY: Final = 16
READY_MARKER: Final = "bench bare worker ready"

# The reference the job-path issue names: a hand-written four-task chain (promptbus runs its
# first stage at dispatch and the other three as tasks, pipeline/worker/steps.py), with
# promptbus's stage families, one queue each (pipeline/bus/celery_app.py).
STEPS: Final = ("lookup", "generate", "postprocess", "emit")
FAMILIES: Final = {
    "lookup": "lookup",
    "generate": "generate",
    "postprocess": "finish",
    "emit": "finish",
}
STAGE_FAMILIES: Final = tuple(sorted(set(FAMILIES.values())))


def bare_queue_name(family: str, suffix: str) -> str:
    """The bare baseline's Celery queue (and exchange) of one stage family."""
    return f"bench.bare.{family}{suffix}"


def bare_completions(suffix: str) -> Exchange:
    """Where the bare chain's last task publishes its completion message."""
    return Exchange(f"bench.bare.completions{suffix}", type="topic", durable=True)


def transport_options(url: str) -> dict[str, Any]:
    """The transport options promptbus uses (pipeline/bus/connection.py)."""
    scheme = url.split("://", 1)[0]
    if scheme in ("amqp", "pyamqp"):
        return {"confirm_publish": True}
    if scheme in ("redis", "rediss"):
        return {"visibility_timeout": 3600}
    return {}


def bare_task_name(step: str) -> str:
    """The Celery task name of a bare step."""
    return f"bench.bare.{step}"


def configure(
    app: Celery,
    url: str,
    queues: list[Queue],
    routes: dict[str, dict[str, str]],
    concurrency: int,
    default_queue: str | None = None,
) -> None:
    """The settings of pipeline/bus/celery_app.py:create_celery, on `queues` and `routes`."""
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
        broker_transport_options=transport_options(url),
        broker_connection_retry_on_startup=True,
        task_queues=queues,
        task_default_queue=default_queue or queues[0].name,
        task_routes=routes,
        worker_enable_remote_control=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_concurrency=concurrency,
        broker_pool_limit=concurrency,
    )


def publish_completion(app: Celery, completions: Exchange, job_id: str) -> None:
    """As promptbus publishes a completion: persistent JSON, routed by outcome."""
    event = {"job_id": job_id, "state": "succeeded"}
    with app.producer_or_acquire() as producer:
        producer.publish(
            json.dumps(event).encode(),
            exchange=completions,
            routing_key="completion.succeeded",
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            declare=[completions],
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.1},
        )


def create_bare_celery(url: str, suffix: str, generate: Step | None = None) -> Celery:
    """A Celery app configured as promptbus's, whose four tasks do nothing but the last publish.

    With `generate`, the generate task runs it instead of passing its payload on.
    """
    app = Celery("promptbus-bench-bare", broker=url, set_as_current=False)
    queues = {}
    for family in STAGE_FAMILIES:
        name = bare_queue_name(family, suffix)
        queues[family] = Queue(
            name, exchange=Exchange(name, type="direct", durable=True), routing_key=name
        )
    configure(
        app,
        url,
        list(queues.values()),
        {bare_task_name(step): {"queue": queues[family].name} for step, family in FAMILIES.items()},
        WORKER_CONCURRENCY,
        queues["lookup"].name,
    )
    completions = bare_completions(suffix)

    def pass_on(payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    def emit(payload: dict[str, Any]) -> dict[str, Any]:
        publish_completion(app, completions, payload["job_id"])
        return payload

    generate_step = generate or pass_on

    def run_generate(payload: dict[str, Any]) -> dict[str, Any]:
        # Celery makes tasks of functions, not of callable objects such as a ClientStep.
        return generate_step(payload)

    bodies = {"emit": emit, "generate": run_generate}
    for step in STEPS:
        app.task(name=bare_task_name(step), acks_late=True, shared=False)(bodies.get(step, pass_on))
    return app


def bare_chain(app: Celery, job_id: str, payload: dict[str, Any]) -> Signature:
    """The four-task chain of one bare job, task ids `{job_id}.{step}` as promptbus's."""
    first, *rest = (
        app.signature(bare_task_name(step), task_id=f"{job_id}.{step}") for step in STEPS
    )
    return chain(first.clone(args=(payload,)), *rest)


class ClientStep:
    """The generate task's one LangChain call to the emulator, on a long-lived event loop.

    As promptbus runs its stages from Celery's threads: each task thread hands the call to
    one loop thread and waits for it.
    """

    def __init__(self, emulator_url: str) -> None:
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="bare-client", daemon=True).start()
        # The model's client holds its session; the worker process ends with both.
        self._llm, _ = self._run(self._build(emulator_url))

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        reply = self._run(self._llm.ainvoke(payload["prompt"]))
        return {**payload, "text": reply.text}

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CLIENT_TIMEOUT_S)

    @staticmethod
    async def _build(emulator_url: str) -> tuple[Any, Any]:
        return gemini_client(emulator_url)


def run_bare_worker(url: str, suffix: str, emulator_url: str | None = None) -> None:
    """Run the bare baseline's Celery worker on threads, as promptbus's embedded worker runs.

    With `emulator_url`, its generate task makes the LangChain call promptbus makes.
    """
    generate = ClientStep(emulator_url) if emulator_url else None
    start_bare_worker(create_bare_celery(url, suffix, generate), WORKER_CONCURRENCY, "bench-bare")


def start_bare_worker(app: Celery, concurrency: int, name: str) -> None:
    """Run `app`'s worker on `concurrency` threads, saying READY_MARKER once it consumes."""
    settle_heap()  # as promptbus settles its own once started

    def ready(**_: Any) -> None:
        print(READY_MARKER, flush=True)

    signals.worker_ready.connect(ready, weak=False)
    worker = app.Worker(
        pool="threads",
        concurrency=concurrency,
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        redirect_stdouts=False,
        quiet=True,
        hostname=f"{name}-{os.getpid()}@localhost",
    )
    worker.start()
