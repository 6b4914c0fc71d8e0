"""The aiohttp application: routes, middleware and the runtime's lifetime."""

from collections.abc import AsyncIterator

from aiohttp import web

from pipeline.ingress.generate import post_generate
from pipeline.ingress.health import get_healthz, get_models, get_readyz
from pipeline.ingress.jobs import delete_job, get_job, get_job_events, list_jobs, post_job
from pipeline.ingress.keys import PARSED_BODIES, RUNTIME, SETTINGS
from pipeline.ingress.memo import ParsedBodies
from pipeline.ingress.middleware import request_context
from pipeline.ingress.templates import add_routes as add_template_routes
from pipeline.ingress.unshared import shared_state_gate
from pipeline.ingress.webhooks import add_routes as add_webhook_routes
from pipeline.runtime import Runtime
from pipeline.settings import Settings


def create_app(settings: Settings) -> web.Application:
    """The ingress application for `settings`; the runtime starts with the app."""
    app = web.Application(middlewares=[request_context], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_runtime)
    app.router.add_post("/v1/generate", post_generate)
    gate = shared_state_gate(settings)
    app.router.add_post("/v1/jobs", gate(post_job))
    app.router.add_get("/v1/jobs", gate(list_jobs))
    app.router.add_get("/v1/jobs/{job_id}", gate(get_job))
    app.router.add_delete("/v1/jobs/{job_id}", gate(delete_job))
    app.router.add_get("/v1/jobs/{job_id}/events", gate(get_job_events))
    add_webhook_routes(app, gate)
    add_template_routes(app)
    app.router.add_get("/v1/models", get_models)
    app.router.add_get("/healthz", get_healthz)
    app.router.add_get("/readyz", get_readyz)
    return app


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    runtime = await Runtime.start(app[SETTINGS])
    app[RUNTIME] = runtime
    app[PARSED_BODIES] = ParsedBodies(runtime.catalog, runtime.templates)
    yield
    await runtime.stop()
