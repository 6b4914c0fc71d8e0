"""Webhook endpoint routes: register, read, delete, rotate the secret, attempts, replay;
and the secret of the tenant's per-job webhooks."""

import asyncio

import orjson
from aiohttp import web

from handlers import job_completion
from pipeline.errors import Conflict, NotFound, ValidationFailed
from pipeline.ingress.body import parse_model, read_json
from pipeline.ingress.keys import SERVICES, SETTINGS
from pipeline.ingress.principal import principal_of
from pipeline.ingress.unshared import Gate, open_gate
from pipeline.webhooks.ssrf import WebhookAddressRefused, check_url
from schemas.webhooks import Endpoint, EndpointCreate


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


async def _endpoint(request: web.Request) -> Endpoint:
    endpoint = await request.app[SERVICES].backends.webhooks.get(request.match_info["endpoint_id"])
    if endpoint is None or endpoint.tenant != principal_of(request).tenant:
        raise NotFound(f"no webhook endpoint {request.match_info['endpoint_id']!r}")
    return endpoint


async def post_webhook(request: web.Request) -> web.Response:
    """Register an endpoint: 201 with its secret, shown this once."""
    services = request.app[SERVICES]
    spec = parse_model(
        EndpointCreate, await read_json(request, request.app[SETTINGS].max_body_bytes)
    )
    try:
        # Literal addresses are refused now; names are checked on every connection.
        check_url(str(spec.url), services.sender.policy)
    except WebhookAddressRefused as exc:
        raise ValidationFailed(f"webhook url refused: {exc.reason}", field="url") from exc
    tenant = principal_of(request).tenant
    endpoint, secret = await asyncio.shield(services.backends.webhooks.create(tenant, spec))
    response = _json({**endpoint.model_dump(mode="json"), "secret": secret}, status=201)
    response.headers["Location"] = f"/v1/webhooks/{endpoint.id}"
    return response


async def list_webhooks(request: web.Request) -> web.Response:
    """The tenant's endpoints (without secrets)."""
    tenant = principal_of(request).tenant
    endpoints = await request.app[SERVICES].backends.webhooks.endpoints(tenant)
    return _json({"data": [e.model_dump(mode="json") for e in endpoints]})


async def get_webhook(request: web.Request) -> web.Response:
    """One endpoint (without its secret)."""
    return _json((await _endpoint(request)).model_dump(mode="json"))


async def delete_webhook(request: web.Request) -> web.Response:
    """Remove an endpoint; deliveries to it stop."""
    endpoint = await _endpoint(request)
    await asyncio.shield(request.app[SERVICES].backends.webhooks.delete(endpoint.id))
    return web.Response(status=204)


async def rotate_secret(request: web.Request) -> web.Response:
    """A new secret; the old one keeps signing alongside for 24 hours."""
    endpoint = await _endpoint(request)
    secret = await asyncio.shield(request.app[SERVICES].backends.webhooks.rotate(endpoint.id))
    return _json({"id": endpoint.id, "secret": secret})


async def get_attempts(request: web.Request) -> web.Response:
    """The endpoint's recent delivery attempts, oldest first."""
    endpoint = await _endpoint(request)
    attempts = await request.app[SERVICES].backends.webhooks.attempts_for_endpoint(endpoint.id)
    return _json({"data": [a.model_dump(mode="json") for a in attempts]})


async def replay(request: web.Request) -> web.Response:
    """Deliver a finished job's completion to the endpoint again."""
    ctx = request.app[SERVICES].ctx
    endpoint = await _endpoint(request)
    job = await ctx.jobs.get(request.match_info["job_id"])
    if job is None or job.tenant != endpoint.tenant:
        raise NotFound(f"no job {request.match_info['job_id']!r}")
    if not job.finished:
        raise Conflict(f"job {job.id!r} has not finished")
    task = await asyncio.shield(ctx.webhooks.replay(job_completion(job), job, endpoint))
    return _json({"message_id": task.message_id, "job_id": job.id, "endpoint_id": endpoint.id}, 202)


async def get_job_secret(request: web.Request) -> web.Response:
    """The secret the tenant's per-job webhooks are signed with (each tenant has its own)."""
    tenant = principal_of(request).tenant
    (secret,) = await request.app[SERVICES].webhooks.tenant_secrets(tenant)
    return _json({"tenant": tenant, "secret": secret})


def add_routes(app: web.Application, gate: Gate = open_gate) -> None:
    """Add the webhook routes to `app`, each through `gate`."""
    # Derived from the settings alone: no shared state needed, so no gate.
    app.router.add_get("/v1/webhook-secret", get_job_secret)
    app.router.add_post("/v1/webhooks", gate(post_webhook))
    app.router.add_get("/v1/webhooks", gate(list_webhooks))
    app.router.add_get("/v1/webhooks/{endpoint_id}", gate(get_webhook))
    app.router.add_delete("/v1/webhooks/{endpoint_id}", gate(delete_webhook))
    app.router.add_post("/v1/webhooks/{endpoint_id}/rotate-secret", gate(rotate_secret))
    app.router.add_get("/v1/webhooks/{endpoint_id}/attempts", gate(get_attempts))
    app.router.add_post("/v1/webhooks/{endpoint_id}/replay/{job_id}", gate(replay))
