"""The aiohttp application: routes, middleware, and the lifetime of what they run on."""

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from opentelemetry.sdk.trace.export import SpanExporter

from pipeline.batches.setup import build_batches
from pipeline.bus.queue_depths import QueueDepths
from pipeline.ingress.admin import add_routes as add_admin_routes
from pipeline.ingress.auth import authentication
from pipeline.ingress.batches import add_routes as add_batch_routes
from pipeline.ingress.chains import add_routes as add_chain_routes
from pipeline.ingress.compat.gemini import add_routes as add_gemini_routes
from pipeline.ingress.compat.openai import add_routes as add_openai_routes
from pipeline.ingress.dashboard import add_routes as add_dashboard_routes
from pipeline.ingress.files import BATCH_NOTICES, BATCH_STORE
from pipeline.ingress.files import add_routes as add_file_routes
from pipeline.ingress.generate import post_generate
from pipeline.ingress.health import get_healthz, get_readyz
from pipeline.ingress.job_events import get_job_events
from pipeline.ingress.jobs import delete_job, get_job, list_jobs, post_job
from pipeline.ingress.keys import METRICS, QUEUE_DEPTHS, SEND, SERVICES, SETTINGS
from pipeline.ingress.metrics_route import admin_once_keys_are_required
from pipeline.ingress.middleware import request_context
from pipeline.ingress.openapi import add_route as add_openapi_route
from pipeline.ingress.send import SendSide
from pipeline.ingress.session_summary import FOLDS
from pipeline.ingress.sessions import add_routes as add_session_routes
from pipeline.ingress.stream_slots import STREAM_SLOTS, StreamSlots
from pipeline.ingress.templates import add_routes as add_template_routes
from pipeline.ingress.tracing import traced_requests
from pipeline.ingress.unshared import shared_state_gate
from pipeline.ingress.usage import get_usage
from pipeline.ingress.webhooks import add_routes as add_webhook_routes
from pipeline.metrics import build_metrics
from pipeline.metrics.exposition import metrics_handler
from pipeline.services import Services
from pipeline.settings import Settings
from pipeline.worker.side import WorkerSide

# What a test hands the app to receive its spans (tracing on, no OTLP exporter).
SPAN_EXPORTER = web.AppKey("span_exporter", SpanExporter)


def create_app(settings: Settings, *, span_exporter: SpanExporter | None = None) -> web.Application:
    """The ingress application for `settings`; its services (and worker) start with the app.

    `span_exporter` (tests) receives the spans instead of the OTLP exporter, tracing on.
    """
    metrics = build_metrics(settings)
    middlewares = [request_context(metrics), authentication(settings)]
    # Off, the tracing middleware is not there at all: a cache hit pays nothing for it.
    if settings.tracing_on or span_exporter is not None:
        middlewares.insert(0, traced_requests)
    app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[FOLDS] = set()
    app[STREAM_SLOTS] = StreamSlots(settings.sse_max_streams_per_tenant)
    if span_exporter is not None:
        app[SPAN_EXPORTER] = span_exporter
    app.cleanup_ctx.append(_lifetime)
    app.router.add_post("/v1/generate", post_generate)
    gate = shared_state_gate(settings)
    app.router.add_post("/v1/jobs", gate(post_job))
    app.router.add_get("/v1/jobs", gate(list_jobs))
    app.router.add_get("/v1/jobs/{job_id}", gate(get_job))
    app.router.add_delete("/v1/jobs/{job_id}", gate(delete_job))
    app.router.add_get("/v1/jobs/{job_id}/events", gate(get_job_events))
    add_webhook_routes(app, gate)
    add_template_routes(app)
    add_chain_routes(app)
    add_session_routes(app)
    add_admin_routes(app)
    add_openai_routes(app)
    add_file_routes(app)
    add_batch_routes(app)
    add_gemini_routes(app)
    app.router.add_get("/v1/usage", get_usage)
    app.router.add_get("/healthz", get_healthz)
    app.router.add_get("/readyz", get_readyz)
    exposition = metrics_handler(
        metrics, settings.metrics_multiprocess_dir, lambda: _sample_queues(app)
    )
    app.router.add_get("/metrics", admin_once_keys_are_required(exposition))
    add_dashboard_routes(app)
    add_openapi_route(app)
    return app


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    services = await Services.start(settings, app[METRICS], span_exporter=app.get(SPAN_EXPORTER))
    worker = WorkerSide(services) if settings.embedded_worker else None
    try:
        if worker is not None:
            await worker.start()
        app[SERVICES] = services
        app[SEND] = SendSide.build(services)
        batches = build_batches(services)
        app[BATCH_STORE], app[BATCH_NOTICES] = batches.store, batches.notices
        if services.metrics.enabled:
            app[QUEUE_DEPTHS] = QueueDepths(services.celery, services.topology, services.metrics)
        yield
    finally:
        # Session folds in flight end with the app (a later turn folds what they left).
        for fold in app[FOLDS]:
            fold.cancel()
        await asyncio.gather(*app[FOLDS], return_exceptions=True)
        if worker is not None:
            await worker.stop()
        await services.stop()


async def _sample_queues(app: web.Application) -> None:
    """Sample the queues' depths for a scrape (blocking Kombu I/O, off the loop)."""
    depths = app.get(QUEUE_DEPTHS)
    if depths is not None:
        await asyncio.to_thread(depths.sample)
