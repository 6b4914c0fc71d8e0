"""GET /dashboard/api/overview: what the dashboard shows beside `/v1/usage`.

Latency percentiles by day and errors by type (from the usage ledger), the jobs queued
or running, and the health of webhook endpoints, for the caller's tenant or, for the
admin, every tenant. Every part is bounded: percentiles come from the newest records of
the range (`LATENCY_SAMPLE`), jobs and endpoints are listed up to a cap per tenant.
"""

import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final, cast

import orjson
from aiohttp import web
from sqlalchemy import Table, func, select

from pipeline.db.tables import Tenant, UsageRecord
from pipeline.ingress.keys import SERVICES
from pipeline.ingress.usage import from_database, usage_query
from pipeline.ledger.entry import ERROR
from pipeline.ledger.usage import UsageQuery
from pipeline.services import Services
from schemas import DEFAULT_TENANT, JobState

R = cast(Table, UsageRecord.__table__).c
LATENCY_SAMPLE: Final = 100_000
MAX_TENANTS: Final = 50
JOBS_PER_TENANT: Final = 20
LIVE_STATES: Final = (JobState.RUNNING, JobState.QUEUED)

_ROWS: Final = {"type": "array", "items": {"type": "object"}}
# The JSON body's schema, for the OpenAPI document.
OVERVIEW: Final = {
    "type": "object",
    "required": ["scope", "latency", "errors", "jobs", "webhooks"],
    "properties": {
        "scope": {"type": "string"},
        "latency": {
            "type": "object",
            "description": "p50/p99 ms overall and by day, of the newest 100,000 records",
            "properties": {
                "p50_ms": {"type": ["number", "null"]},
                "p99_ms": {"type": ["number", "null"]},
                "sampled": {"type": "integer"},
                "truncated": {"type": "boolean"},
                "days": _ROWS,
            },
        },
        "errors": _ROWS,
        "jobs": _ROWS,
        "webhooks": _ROWS,
    },
}


async def get_overview(request: web.Request) -> web.Response:
    """Latency, errors, live jobs and webhook health over the usage query's range."""
    query = usage_query(request)
    services = request.app[SERVICES]
    latency, errors, tenants = await from_database(request, _from_ledger(services, query))
    scope = tenants if query.tenant is None else [query.tenant]
    body = {
        "scope": "every tenant" if query.tenant is None else f"tenant {query.tenant}",
        "latency": latency,
        "errors": errors,
        "jobs": await _live_jobs(services, scope),
        "webhooks": await _webhooks(services, scope),
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def _from_ledger(
    services: Services, query: UsageQuery
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    window = (R.at >= query.start, R.at < query.end)
    mine = () if query.tenant is None else (R.tenant == query.tenant,)
    newest = (
        select(R.at, R.latency_ms).where(*window, *mine).order_by(R.at.desc()).limit(LATENCY_SAMPLE)
    )
    by_type = (
        select(R.error_type, func.count())
        .where(*window, *mine, R.status == ERROR)
        .group_by(R.error_type)
        .order_by(func.count().desc())
    )
    async with services.database.connect() as connection:
        samples = (await connection.execute(newest)).all()
        errors = [
            {"type": kind or "unknown", "count": count}
            for kind, count in (await connection.execute(by_type)).all()
        ]
        tenants: list[str] = []
        if query.tenant is None:
            listed = select(Tenant.id).order_by(Tenant.id).limit(MAX_TENANTS)
            tenants = [row[0] for row in (await connection.execute(listed)).all()]
    if DEFAULT_TENANT not in tenants:
        tenants.insert(0, DEFAULT_TENANT)
    return _latency(samples), errors, tenants


def _latency(samples: Sequence[Any]) -> dict[str, Any]:
    by_day: dict[str, list[float]] = defaultdict(list)
    for at, latency_ms in samples:
        by_day[at.strftime("%Y-%m-%d")].append(latency_ms)
    everything = [value for values in by_day.values() for value in values]
    p50, p99 = _percentiles(everything)
    return {
        "p50_ms": p50,
        "p99_ms": p99,
        "sampled": len(everything),
        "truncated": len(everything) >= LATENCY_SAMPLE,
        "days": [
            dict(zip(("day", "p50_ms", "p99_ms"), (day, *_percentiles(values)), strict=True))
            for day, values in sorted(by_day.items())
        ],
    }


def _percentiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    if len(values) == 1:
        return values[0], values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return round(cuts[49], 3), round(cuts[98], 3)


async def _live_jobs(services: Services, tenants: Sequence[str]) -> list[dict[str, Any]]:
    live: list[dict[str, Any]] = []
    for tenant in tenants:
        for state in LIVE_STATES:
            page = await services.ctx.jobs.list(
                tenant=tenant, state=state, limit=JOBS_PER_TENANT, cursor=None
            )
            live += [
                {
                    "id": job.id,
                    "tenant": job.tenant,
                    "state": job.state,
                    "stage": job.stage,
                    "updated_at": job.updated_at,
                }
                for job in page.data
            ]
    return live


async def _webhooks(services: Services, tenants: Sequence[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for tenant in tenants:
        for endpoint in await services.backends.webhooks.endpoints(tenant):
            health = "ok"
            if endpoint.disabled_at is not None:
                health = f"disabled: {endpoint.disabled_reason or 'by its owner'}"
            elif endpoint.failing_since is not None:
                health = "failing"
            found.append(
                {"id": endpoint.id, "tenant": tenant, "url": endpoint.url, "health": health}
            )
    return found
