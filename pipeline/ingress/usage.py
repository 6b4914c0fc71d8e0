"""GET /v1/usage: what the ledger recorded over a time range, totals and series, JSON or CSV.

A caller sees its own tenant's usage; the admin sees every tenant's and may pick one.
"""

import asyncio
import csv
import io
from collections.abc import Awaitable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, TypeVar

import orjson
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from pipeline.errors import DatabaseUnavailable, InvalidQuery, PermissionDenied
from pipeline.ingress.keys import SERVICES, SETTINGS
from pipeline.ingress.principal import principal_of
from pipeline.ledger.usage import GROUPS, METRICS, UsageQuery, UsageReport, usage_report

T = TypeVar("T")

DEFAULT_RANGE: Final = timedelta(days=30)
DEFAULT_GROUPS: Final = ("day",)
_FORMATS: Final = ("json", "csv")

_NUMBERS: Final = {name: {"type": "number"} for name in METRICS}
# The JSON body's schema, for the OpenAPI document.
USAGE_REPORT: Final = {
    "type": "object",
    "required": ["from", "to", "group_by", "totals", "series", "truncated", "max_series"],
    "properties": {
        "from": {"type": "string", "format": "date-time"},
        "to": {"type": "string", "format": "date-time"},
        "group_by": {"type": "array", "items": {"enum": list(GROUPS)}},
        "tenant": {"type": ["string", "null"]},
        "totals": {"type": "object", "properties": _NUMBERS},
        "series": {
            "type": "array",
            "items": {"type": "object", "description": "The group keys, then the metrics"},
        },
        "truncated": {"type": "boolean", "description": "More rows than max_series matched"},
        "max_series": {"type": "integer"},
    },
}


async def get_usage(request: web.Request) -> web.Response:
    """Totals and series of usage records in [from, to), grouped by `group_by`."""
    query = usage_query(request)
    csv_wanted = _wants_csv(request)
    engine = request.app[SERVICES].database
    report = await from_database(request, usage_report(engine, query))
    if csv_wanted:
        return web.Response(
            body=_csv(report, query).encode(),
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": 'attachment; filename="usage.csv"',
            },
        )
    body = {
        "from": _iso(query.start),
        "to": _iso(query.end),
        "group_by": list(query.group_by),
        "tenant": query.tenant,
        "totals": report.totals,
        "series": report.series,
        "truncated": report.truncated,
        "max_series": query.max_series,
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def from_database(request: web.Request, work: Awaitable[T]) -> T:
    """`work`'s result, bounded by `usage_timeout_s`; DatabaseUnavailable if it fails."""
    try:
        async with asyncio.timeout(request.app[SETTINGS].usage_timeout_s):
            return await work
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise DatabaseUnavailable(
            f"the usage database did not answer: {type(exc).__name__}"
        ) from None


def usage_query(request: web.Request) -> UsageQuery:
    """The range, groups and tenant a request asks for (400 on a bad parameter; 403 when a
    tenant asks for another's usage); the dashboard's overview reads the same."""
    params = request.query
    principal = principal_of(request)
    now = datetime.now(UTC)
    end = _when(params["to"], "to", end=True) if "to" in params else now
    start = _when(params["from"], "from", end=False) if "from" in params else end - DEFAULT_RANGE
    if start >= end:
        raise InvalidQuery("'from' must be before 'to'", field="from")
    tenant = params.get("tenant") or None
    if not principal.admin:
        if tenant is not None and tenant != principal.tenant:
            raise PermissionDenied(
                "only the admin key may see another tenant's usage", field="tenant"
            )
        tenant = principal.tenant
    return UsageQuery(
        start=start,
        end=end,
        group_by=_groups(params.get("group_by")),
        tenant=tenant,
        max_series=request.app[SETTINGS].usage_max_series,
    )


def _when(text: str, name: str, *, end: bool) -> datetime:
    """An ISO-8601 date or date-time, in UTC (a time without an offset is UTC).

    A date alone is a whole day: `from=2026-12-01` starts at its midnight, `to=2026-12-31`
    takes in all of that day.
    """
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidQuery(
            f"{name!r} must be an ISO-8601 date or date-time, e.g. 2026-12-01 or "
            "2026-12-01T12:00:00Z",
            field=name,
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _groups(text: str | None) -> tuple[str, ...]:
    if text is None:
        return DEFAULT_GROUPS
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        raise InvalidQuery(
            f"group_by takes a comma-separated subset of {', '.join(GROUPS)}; "
            f"unknown: {', '.join(unknown[:5])}",
            field="group_by",
        )
    return tuple(dict.fromkeys(names))


def _wants_csv(request: web.Request) -> bool:
    fmt = request.query.get("format")
    if fmt is not None:
        if fmt not in _FORMATS:
            raise InvalidQuery("format must be json or csv", field="format")
        return fmt == "csv"
    return "text/csv" in request.headers.get("Accept", "")


def _csv(report: UsageReport, query: UsageQuery) -> str:
    """The series as CSV, one row a group; with no groups, the totals as its one row."""
    keys: list[str] = []
    for name in query.group_by:
        keys.append(name)
        if name == "template":
            keys.append("template_version")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*keys, *METRICS])
    rows: list[dict[str, Any]] = report.series if keys else [report.totals]
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in (*keys, *METRICS)])
    return out.getvalue()


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
