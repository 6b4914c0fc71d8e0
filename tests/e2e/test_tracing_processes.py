"""Traces across processes: an ingress and a worker on a real broker, exporting over OTLP/HTTP.

Both are real `promptbus` processes (`serve --no-worker` and `worker`) on RabbitMQ or Redis;
the collector is a fake of the test's own that decodes the real protocol
(tests/support/traces.py). The exporters' batch delay is set longer than any test runs, so
the spans reach the collector only when each process flushes them on its way out.
"""

import json
import signal
from collections.abc import Sequence

import pytest

from tests.support.deployment import JSON, Deployment, deployment
from tests.support.processes import Proc
from tests.support.traces import (
    PARENT_ID,
    TRACE_ID,
    TRACEPARENT,
    OtlpReceiver,
    Recorded,
    in_trace,
    one,
    otlp_receiver,
)
from tests.support.unique import new_id
from tests.support.webhook_receivers import receiving

# Spans wait in each process until it stops (or a batch of 512 fills): see the docstring.
HELD = {"OTEL_BSP_SCHEDULE_DELAY": "600000", "PROMPTBUS_WEBHOOK_ALLOW_PRIVATE": "127.0.0.0/8"}
STOP_S = 60.0


def _tracing(collector: OtlpReceiver, **extra: str) -> dict[str, str]:
    return {**HELD, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, **extra}


async def _job_with_webhook(d: Deployment, ingress: Proc, webhook_url: str) -> str:
    body = {"model": "flash", "prompt": new_id("traced"), "webhook": {"url": webhook_url}}
    headers = {**JSON, "traceparent": TRACEPARENT}
    async with d.session.post(
        f"{ingress.url}/v1/jobs", data=json.dumps(body), headers=headers
    ) as r:
        assert r.status == 202, await r.text()
        return str((await r.json())["id"])


def _stop(procs: Sequence[Proc]) -> None:
    """SIGTERM each process and wait until it has exited (flushing its spans)."""
    for proc in procs:
        proc.send(signal.SIGTERM)
    for proc in procs:
        assert proc.exited_within(STOP_S), f"{proc.name} did not stop; log:\n{proc.log()[-2000:]}"


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("broker", "pool"), [("rabbitmq", "threads"), ("redis", "threads"), ("redis", "prefork")]
)
async def test_one_trace_runs_from_the_ingress_through_the_worker_to_the_webhook(
    broker: str, pool: str
) -> None:
    async with otlp_receiver() as collector, receiving() as hook:
        async with deployment(broker, _tracing(collector)) as d:
            # (prefork: the steps and deliveries run in pool children, each its own exporter)
            pool_env = {"PROMPTBUS_WORKER_POOL": pool, "PROMPTBUS_WORKER_CONCURRENCY": "2"}
            (worker,) = await d.workers(1, pool_env)
            (ingress,) = await d.ingresses(1)
            # Given a caller in a trace of its own
            # When it submits a job with a webhook to the ingress, and the worker runs it
            job_id = await _job_with_webhook(d, ingress, hook.url)
            (delivered,) = await hook.wait_for(1, timeout_s=60)
            assert delivered.event()["job_id"] == job_id
            # And both processes stop (and so flush what they recorded)
            _stop([ingress, worker])

        spans = in_trace(collector.spans(), TRACE_ID)

    # Then one trace holds the HTTP request, the bus hop, every step, the call and the webhook
    def where(span: Recorded) -> str:
        return str(span.resource["promptbus.process.role"])

    server = one(spans, "POST /v1/jobs")
    assert (where(server), server.kind, server.parent_id) == ("ingress", "SERVER", PARENT_ID)
    assert server.attributes["http.response.status_code"] == 202
    assert server.resource["service.name"] == "promptbus"

    process = one(spans, "process promptbus.requests")
    assert (where(process), process.kind, process.parent_id) == (
        "worker",
        "CONSUMER",
        server.span_id,
    )
    stages = {s.attributes["promptbus.stage"]: s for s in spans if s.name.startswith("stage ")}
    assert sorted(stages) == ["emit", "generate", "lookup", "postprocess"]
    for stage in stages.values():
        assert (where(stage), stage.parent_id) == ("worker", process.span_id), stage
        assert stage.attributes["promptbus.job.id"] == job_id

    call = one(spans, "generate_content gemini-2.5-flash")
    assert (where(call), call.kind, call.parent_id) == (
        "worker",
        "CLIENT",
        stages["generate"].span_id,
    )
    assert call.attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert call.attributes["gen_ai.usage.output_tokens"] > 0

    delivery = one(spans, "webhook delivery")
    assert (where(delivery), delivery.parent_id) == ("worker", stages["emit"].span_id)
    assert delivery.attributes["promptbus.webhook.outcome"] == "delivered"


@pytest.mark.timeout(240)
async def test_with_tracing_off_no_process_exports_anything() -> None:
    async with otlp_receiver() as collector, receiving() as hook:
        # Given processes told where a collector is, but with PROMPTBUS_TRACING=false
        async with deployment("redis", _tracing(collector, PROMPTBUS_TRACING="false")) as d:
            (worker,) = await d.workers(1)
            (ingress,) = await d.ingresses(1)
            # When a traced caller's job runs to its webhook, and the processes stop
            await _job_with_webhook(d, ingress, hook.url)
            await hook.wait_for(1, timeout_s=60)
            _stop([ingress, worker])

        # Then the collector never heard from them
        assert collector.requests == 0
