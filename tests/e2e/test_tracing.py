"""Traces in one process: a real gateway whose spans go to an in-memory exporter.

The gateway answers over real loopback HTTP from the real emulator, through LangChain; the
exporter stands in for the OTLP one only (tests/e2e/test_tracing_processes.py sends spans
over OTLP/HTTP between real processes).
"""

import json
import threading
from collections.abc import AsyncIterator

import aiohttp
import pytest
from opentelemetry import trace

from pipeline.emulator import EmulatorConfig, start_emulator
from tests.support.gateway import Gateway, serving
from tests.support.job_env import job_env
from tests.support.polling import poll
from tests.support.sse import read_stream
from tests.support.traces import (
    PARENT_ID,
    TRACE_ID,
    TRACEPARENT,
    MemorySpans,
    has_names,
    in_trace,
    named,
    one,
    wait_for_spans,
)
from tests.support.unique import new_id
from tests.support.webhook_flows import FAST, settled
from tests.support.webhook_receivers import Answer, receiving

GENERATE_SPAN = "POST /v1/generate"
GEMINI_CALL = "generate_content gemini-2.5-flash"


@pytest.fixture
async def memory() -> MemorySpans:
    return MemorySpans()


@pytest.fixture
async def traced(memory: MemorySpans, session: aiohttp.ClientSession) -> AsyncIterator[Gateway]:
    """A gateway (no worker) whose spans go to `memory`, on an emulator of its own."""
    running = await start_emulator(EmulatorConfig(), host="127.0.0.1", port=0)
    try:
        async with serving(
            session,
            span_exporter=memory.exporter,
            gemini_base_url=running.base_url,
            retry_max_attempts=1,
        ) as gateway:
            memory.tracing.append(gateway.services.tracing)
            yield gateway
    finally:
        await running.stop()


async def test_a_miss_is_a_server_span_over_its_stages_and_one_gemini_call(
    traced: Gateway, memory: MemorySpans
) -> None:
    # Given a caller whose request carries a W3C traceparent
    prompt = new_id("traced")
    # When it asks for an answer promptbus does not have yet
    reply = await traced.generate(
        {"model": "flash", "prompt": prompt}, headers={"traceparent": TRACEPARENT}
    )
    assert reply.status == 200, reply.body

    # Then the request is a server span in the caller's trace, child of the caller's span
    spans = await wait_for_spans(
        memory.spans,
        has_names(GENERATE_SPAN, "stage postprocess"),
        timeout_s=10,
        what="the request's spans",
    )
    spans = in_trace(spans, TRACE_ID)
    server = one(spans, GENERATE_SPAN)
    assert (server.kind, server.parent_id) == ("SERVER", PARENT_ID)
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.route"] == "/v1/generate"
    assert server.attributes["http.response.status_code"] == 200
    assert server.resource["service.name"] == "promptbus"
    assert server.resource["promptbus.process.role"] == "ingress"

    # And each stage is a span under it: the lookup missed, then generate and post-process
    stages = ("lookup", "generate", "postprocess")
    lookup, generate, post = (one(spans, f"stage {stage}") for stage in stages)
    assert {s.parent_id for s in (lookup, generate, post)} == {server.span_id}
    assert lookup.attributes["promptbus.cache.hit"] is False
    assert generate.attributes["promptbus.request.id"] == reply.header("X-Request-Id")

    # And the Gemini call (LangChain to the emulator) is a client span under generate,
    # with the GenAI attributes and the tokens the answer reports
    call = one(spans, GEMINI_CALL)
    assert (call.kind, call.parent_id, call.status) == ("CLIENT", generate.span_id, "UNSET")
    attributes = call.attributes
    assert attributes["gen_ai.operation.name"] == "generate_content"
    assert attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert attributes["gen_ai.request.model"] == "gemini-2.5-flash"
    assert attributes["gen_ai.response.model"] == "gemini-2.5-flash"
    usage = reply.body["usage"]
    assert usage["input_tokens"] > 0
    assert attributes["gen_ai.usage.input_tokens"] == usage["input_tokens"]
    assert attributes["gen_ai.usage.output_tokens"] == usage["output_tokens"]
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert "error.type" not in attributes


async def test_a_hit_is_a_lookup_span_that_hit_and_no_call(
    traced: Gateway, memory: MemorySpans
) -> None:
    # Given an answer already cached
    body = {"model": "flash", "prompt": new_id("hit")}
    assert (await traced.generate(body)).status == 200
    await wait_for_spans(memory.spans, has_names(GEMINI_CALL), timeout_s=10, what="the miss")
    memory.exporter.clear()

    # When the same request comes again
    reply = await traced.generate(body, headers={"traceparent": TRACEPARENT})
    assert reply.status == 200
    assert reply.body["cache"]["hit"] is True

    # Then its trace holds the server span and a lookup that hit, and no upstream call
    spans = await wait_for_spans(
        memory.spans, has_names(GENERATE_SPAN), timeout_s=10, what="the hit's server span"
    )
    spans = in_trace(spans, TRACE_ID)
    assert sorted(s.name for s in spans) == [GENERATE_SPAN, "stage lookup"]
    assert one(spans, "stage lookup").attributes["promptbus.cache.hit"] is True


async def test_a_stream_is_traced_like_a_plain_answer(
    traced: Gateway, memory: MemorySpans, session: aiohttp.ClientSession
) -> None:
    # When a streamed answer is generated
    body = {"model": "flash", "prompt": new_id("streamed"), "stream": True}
    stream = await read_stream(session, traced.url + "/v1/generate", body)
    assert stream.status == 200
    done = stream.named("done")[0].data

    # Then its call is a streamed client span with the stream's token counts
    spans = await wait_for_spans(
        memory.spans,
        has_names(GENERATE_SPAN, "stage postprocess"),
        timeout_s=10,
        what="the stream's spans",
    )
    call = one(spans, GEMINI_CALL)
    assert call.attributes["promptbus.stream"] is True
    assert call.attributes["gen_ai.usage.output_tokens"] == done["usage"]["output_tokens"]
    assert call.parent_id == one(spans, "stage generate").span_id
    assert one(spans, "stage generate").parent_id == one(spans, GENERATE_SPAN).span_id


async def test_a_malformed_traceparent_starts_a_trace_of_its_own(
    traced: Gateway, memory: MemorySpans
) -> None:
    # When a caller sends a traceparent that is not W3C's
    reply = await traced.generate(
        {"model": "flash", "prompt": new_id("bad-parent")},
        headers={"traceparent": "00-not-a-trace-01"},
    )

    # Then it is answered, and its server span is the root of a new trace
    assert reply.status == 200
    spans = await wait_for_spans(
        memory.spans, has_names(GENERATE_SPAN), timeout_s=10, what="the server span"
    )
    server = one(spans, GENERATE_SPAN)
    assert server.parent_id is None
    assert server.trace_id not in (TRACE_ID, "0" * 32)


async def test_an_openai_surface_call_is_a_chat_span_of_the_openai_provider(
    traced: Gateway, memory: MemorySpans
) -> None:
    # When a request for an OpenAI-compatible model is answered through ChatOpenAI
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": new_id("chat")}]}
    reply = await traced.post_raw("/v1/chat/completions", json.dumps(body))
    assert reply.status == 200, reply.body

    # Then its route and its call are named the conventions' way
    spans = await wait_for_spans(
        memory.spans,
        has_names("POST /v1/chat/completions", "chat gpt-4o-mini"),
        timeout_s=10,
        what="the chat spans",
    )
    call = one(spans, "chat gpt-4o-mini")
    assert call.attributes["gen_ai.operation.name"] == "chat"
    assert call.attributes["gen_ai.provider.name"] == "openai"
    assert call.attributes["gen_ai.usage.output_tokens"] == reply.body["usage"]["completion_tokens"]


async def test_an_upstream_failure_is_an_error_with_its_type(
    traced: Gateway, memory: MemorySpans
) -> None:
    # When the provider answers 503 (an emulator directive)
    reply = await traced.generate(
        {"model": "flash", "prompt": f"{new_id('down')} [[emulator:status=503]]"},
        headers={"traceparent": TRACEPARENT},
    )
    assert reply.status == 503, reply.body

    # Then the call's span failed with promptbus's error type, and so did its stage
    spans = await wait_for_spans(
        memory.spans, has_names(GENERATE_SPAN), timeout_s=10, what="the failed request's spans"
    )
    spans = in_trace(spans, TRACE_ID)
    call = one(spans, GEMINI_CALL)
    assert call.status == "ERROR"
    assert call.attributes["error.type"] == "upstream_unavailable"
    assert "gen_ai.usage.input_tokens" not in call.attributes
    generate = one(spans, "stage generate")
    assert (generate.status, generate.attributes["error.type"]) == ("ERROR", "upstream_unavailable")
    assert named(spans, "stage postprocess") == []

    # And the server span says 503, an error of the server's
    server = one(spans, GENERATE_SPAN)
    assert server.attributes["http.response.status_code"] == 503
    assert (server.status, server.attributes["error.type"]) == ("ERROR", "503")


async def test_a_route_pattern_names_the_span_and_a_4xx_is_not_a_server_error(
    traced: Gateway, memory: MemorySpans
) -> None:
    # When a job that does not exist is asked for
    reply = await traced.get("/v1/jobs/job_missing")
    assert reply.status == 404

    # Then the span is named by the route's pattern, not the path, and is no error
    spans = await wait_for_spans(
        memory.spans, has_names("GET /v1/jobs/{job_id}"), timeout_s=10, what="the span"
    )
    span = one(spans, "GET /v1/jobs/{job_id}")
    assert span.attributes["http.route"] == "/v1/jobs/{job_id}"
    assert span.attributes["url.path"] == "/v1/jobs/job_missing"
    assert span.attributes["http.response.status_code"] == 404
    assert span.status == "UNSET"


async def test_a_job_is_one_trace_from_its_post_to_its_webhook(memory: MemorySpans) -> None:
    async with (
        job_env("memory", span_exporter=memory.exporter, **FAST) as env,
        receiving() as receiver,
    ):
        memory.tracing.append(env.gateway.services.tracing)
        # Given a caller in a trace of its own
        # When it submits a job with a webhook, and the job completes
        accepted = await env.submit(
            {"model": "flash", "prompt": new_id("job"), "webhook": {"url": receiver.url}},
            headers={"traceparent": TRACEPARENT},
        )
        assert accepted.status == 202, accepted.body
        job_id = accepted.body["id"]
        await settled(env, job_id)

        # Then one trace runs from the POST through the bus and the Celery steps to the webhook
        spans = await wait_for_spans(
            memory.spans,
            has_names("webhook delivery"),
            timeout_s=15,
            what="the webhook delivery span",
        )
    spans = in_trace(spans, TRACE_ID)
    server = one(spans, "POST /v1/jobs")
    assert server.parent_id == PARENT_ID
    process = one(spans, "process promptbus.requests")
    assert (process.kind, process.parent_id) == ("CONSUMER", server.span_id)
    assert process.attributes["promptbus.dispatch.fate"] == "started"
    by_stage = {s.attributes["promptbus.stage"]: s for s in spans if s.name.startswith("stage ")}
    assert sorted(by_stage) == ["emit", "generate", "lookup", "postprocess"]
    assert {s.parent_id for s in by_stage.values()} == {process.span_id}
    assert {s.attributes["promptbus.job.id"] for s in by_stage.values()} == {job_id}
    call = one(spans, GEMINI_CALL)
    assert call.parent_id == by_stage["generate"].span_id
    assert call.attributes["gen_ai.usage.output_tokens"] > 0
    delivery = one(spans, "webhook delivery")
    assert (delivery.kind, delivery.parent_id) == ("CLIENT", by_stage["emit"].span_id)
    assert delivery.attributes["http.response.status_code"] == 200
    assert delivery.attributes["promptbus.webhook.outcome"] == "delivered"
    assert delivery.attributes["server.address"] == "127.0.0.1"
    assert delivery.resource["promptbus.process.role"] == "embedded"


async def test_a_bus_event_with_a_traceparent_header_continues_its_trace(
    memory: MemorySpans,
) -> None:
    async with job_env("memory", span_exporter=memory.exporter) as env:
        memory.tracing.append(env.gateway.services.tracing)
        # Given an upstream system that publishes a request event in a trace of its own
        job_id = new_id("upstream")
        event = {
            "schema": "promptbus.request/v1",
            "job_id": job_id,
            "request": {"model": "flash", "prompt": new_id("bus")},
        }
        with env.bus.connection() as connection:
            connection.Producer().publish(
                json.dumps(event).encode(),
                exchange=env.bus.topology.requests_exchange,
                routing_key="request",
                content_type="application/json",
                content_encoding="utf-8",
                headers={"traceparent": TRACEPARENT},
                declare=[env.bus.topology.requests_exchange],
            )
        # When promptbus runs its job
        await poll(
            lambda: env.get(f"/v1/jobs/{job_id}"),
            lambda reply: reply.status == 200 and reply.body["state"] == "succeeded",
            timeout_s=15,
            what="the upstream job's success",
        )

        # Then the job's spans continue the publisher's trace
        spans = await wait_for_spans(
            memory.spans, has_names("stage emit"), timeout_s=15, what="the job's spans"
        )
    spans = in_trace(spans, TRACE_ID)
    process = one(spans, "process promptbus.requests")
    assert process.parent_id == PARENT_ID
    assert one(spans, "stage emit").parent_id == process.span_id


async def test_tracing_off_records_nothing_and_starts_no_exporter_thread(
    session: aiohttp.ClientSession,
) -> None:
    running = await start_emulator(EmulatorConfig(), host="127.0.0.1", port=0)
    try:
        # Given a gateway with tracing off (no OTLP endpoint, no PROMPTBUS_TRACING)
        async with serving(session, gemini_base_url=running.base_url) as gateway:
            # When it answers a traced caller, a miss then a hit
            body = {"model": "flash", "prompt": new_id("untraced")}
            for _ in range(2):
                reply = await gateway.generate(body, headers={"traceparent": TRACEPARENT})
                assert reply.status == 200

            # Then it has no tracer, its router none, and no span exporter thread runs
            tracing = gateway.services.tracing
            assert tracing.on is False
            assert tracing.tracer is None
            assert gateway.services.ctx.tracer is None
            assert not [t for t in threading.enumerate() if t.name.startswith("OtelBatch")]
            # And nothing of promptbus's set OpenTelemetry's global provider either
            assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    finally:
        await running.stop()


async def test_each_webhook_attempt_is_a_span_in_the_job_trace(memory: MemorySpans) -> None:
    async with (
        job_env("memory", span_exporter=memory.exporter, **FAST) as env,
        receiving(Answer(500)) as receiver,
    ):
        memory.tracing.append(env.gateway.services.tracing)
        # Given a receiver that fails the first attempt with a 500
        # When a traced job's webhook is delivered on the second
        accepted = await env.submit(
            {"model": "flash", "prompt": new_id("retried"), "webhook": {"url": receiver.url}},
            headers={"traceparent": TRACEPARENT},
        )
        assert accepted.status == 202, accepted.body
        await settled(env, accepted.body["id"])

        # Then both attempts are spans under the job's emit, the first failed with its status
        spans = await wait_for_spans(
            memory.spans,
            lambda found: len(named(found, "webhook delivery")) == 2,
            timeout_s=15,
            what="two delivery spans",
        )
    spans = in_trace(spans, TRACE_ID)
    emit = one(spans, "stage emit")
    first, second = sorted(
        named(spans, "webhook delivery"), key=lambda s: s.attributes["promptbus.webhook.attempt"]
    )
    assert {first.parent_id, second.parent_id} == {emit.span_id}
    assert (first.status, first.attributes["error.type"]) == ("ERROR", "500")
    assert first.attributes["promptbus.webhook.outcome"] == "retrying"
    assert (second.status, second.attributes["promptbus.webhook.outcome"]) == ("UNSET", "delivered")
