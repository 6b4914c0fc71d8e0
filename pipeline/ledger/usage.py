"""Reading the ledger back: totals and series over a time range, aggregated in SQL.

One GROUP BY query for the series (capped) and one for the totals, on SQLite and
PostgreSQL alike; only the day bucket differs between them.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, Select, Table, case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.db.tables import UsageRecord
from pipeline.ledger.entry import COALESCED, ERROR

R = cast(Table, UsageRecord.__table__).c
# What a series row can be grouped by; "template" is the template's id and version.
GROUPS: Final = ("day", "model", "tenant", "key", "template")
METRICS: Final = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "saved_usd",
    "cache_hits",
)
# Sums of dollars carry float noise past this many places.
_USD_PLACES: Final = 10


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """A time range [start, end) in UTC, the groups of a series row, and whose usage."""

    start: datetime
    end: datetime
    group_by: tuple[str, ...] = ()
    # None: every tenant (the admin's view).
    tenant: str | None = None
    max_series: int = 1000


@dataclass(frozen=True, slots=True)
class UsageReport:
    """The totals over the range, and the series rows (at most `max_series` of them)."""

    totals: dict[str, Any]
    series: list[dict[str, Any]]
    truncated: bool


async def usage_report(engine: AsyncEngine, query: UsageQuery) -> UsageReport:
    """Totals and series for `query`, each aggregated by the database."""
    groups = _group_columns(query.group_by, engine.dialect.name)
    metrics = _metrics()
    totals_sql = _filtered(select(*metrics), query)
    series_sql: Select[Any] | None = None
    if groups:
        keys = [column for _, column in groups]
        series_sql = (
            _filtered(select(*(column.label(name) for name, column in groups), *metrics), query)
            .group_by(*keys)
            .order_by(*keys)
            .limit(query.max_series + 1)
        )
    async with engine.connect() as connection:
        totals = _numbers((await connection.execute(totals_sql)).mappings().one())
        rows: Sequence[Any] = []
        if series_sql is not None:
            rows = (await connection.execute(series_sql)).mappings().all()
    series = [_series_row(row, query.group_by) for row in rows[: query.max_series]]
    return UsageReport(totals, series, truncated=len(rows) > query.max_series)


def _filtered(statement: Select[Any], query: UsageQuery) -> Select[Any]:
    # Stored times are UTC; SQLite compares them as text, so the bounds must be UTC too.
    start, end = query.start.astimezone(UTC), query.end.astimezone(UTC)
    statement = statement.where(R.at >= start, R.at < end)
    if query.tenant is not None:
        statement = statement.where(R.tenant == query.tenant)
    return statement


def _metrics() -> list[ColumnElement[Any]]:
    def total(column: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(column), 0)

    hit = (R.cache_tier.is_not(None)) & (R.cache_tier != COALESCED)
    return [
        func.count().label("requests"),
        total(case((R.status == ERROR, 1), else_=0)).label("errors"),
        total(R.input_tokens).label("input_tokens"),
        total(R.output_tokens).label("output_tokens"),
        total(R.cost_usd).label("cost_usd"),
        total(R.saved_usd).label("saved_usd"),
        total(case((hit, 1), else_=0)).label("cache_hits"),
    ]


def _group_columns(group_by: Sequence[str], dialect: str) -> list[tuple[str, ColumnElement[Any]]]:
    columns: list[tuple[str, ColumnElement[Any]]] = []
    for name in group_by:
        if name == "day":
            columns.append(("day", _day(dialect)))
        elif name == "model":
            columns.append(("model", R.model))
        elif name == "tenant":
            columns.append(("tenant", R.tenant))
        elif name == "key":
            columns.append(("key", R.key_id))
        elif name == "template":
            columns.append(("template", R.template_id))
            columns.append(("template_version", R.template_version))
        else:
            raise ValueError(f"unknown group {name!r}")
    return columns


def _day(dialect: str) -> ColumnElement[Any]:
    """The UTC day of a record, as YYYY-MM-DD."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", R.at), literal_column("'YYYY-MM-DD'"))
    # SQLite keeps the UTC time as text, 'YYYY-MM-DD HH:MM:SS...'.
    return func.substr(R.at, 1, 10)


def _numbers(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in METRICS:
        value = row[name]
        out[name] = round(float(value), _USD_PLACES) if name.endswith("_usd") else int(value)
    return out


def _series_row(row: Any, group_by: Sequence[str]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for name in group_by:
        keys[name] = row[name]
        if name == "template":
            keys["template_version"] = row["template_version"]
    return {**keys, **_numbers(row)}
