"""GET /v1/usage over a seeded ledger, on SQLite and PostgreSQL: totals, series, grouping,
date ranges, CSV, bad parameters, and each tenant seeing only its own usage."""

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pipeline.ingress import create_app
from pipeline.ingress.keys import SERVICES
from pipeline.ingress.middleware import Handler
from pipeline.ingress.principal import PRINCIPAL_KEY, Principal
from pipeline.ledger import ERROR, Ledger
from tests.support.emulator import Emulator
from tests.support.ledger import at, entry, flushed
from tests.support.served import served
from tests.support.settings import settings_for_test

# Who the caller is, by header, set straight on the request (tests/e2e/test_usage_tenants.py
# does the same with real API keys): the seeded tenants need no keys.
TENANT_HEADER = "X-Test-Tenant"
ADMIN_HEADER = "X-Test-Admin"


@web.middleware
async def principal_by_header(request: web.Request, handler: Handler) -> web.StreamResponse:
    tenant = request.headers.get(TENANT_HEADER)
    if tenant is not None:
        admin = request.headers.get(ADMIN_HEADER) == "1"
        request[PRINCIPAL_KEY] = Principal(tenant, key_id=f"key-{tenant}", admin=admin)
    return await handler(request)


class Usage:
    """A gateway with a seeded ledger, and GET /v1/usage as one tenant or another."""

    def __init__(self, url: str, app: web.Application, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.ledger: Ledger | None = app[SERVICES].ledger
        self.session = session

    async def get(
        self, query: str = "", *, tenant: str = "acme", admin: bool = False, **headers: str
    ) -> tuple[int, Any, str]:
        sent = {TENANT_HEADER: tenant, ADMIN_HEADER: "1" if admin else "0", **headers}
        async with self.session.get(f"{self.url}/v1/usage{query}", headers=sent) as resp:
            text = await resp.text()
            body = (
                await resp.json(content_type=None) if resp.content_type.endswith("json") else text
            )
            return resp.status, body, resp.content_type


@pytest.fixture
async def usage(
    database_url: str, emulator: Emulator, session: aiohttp.ClientSession
) -> AsyncIterator[Usage]:
    app = create_app(
        settings_for_test(database_url=database_url, gemini_base_url=emulator.base_url)
    )
    app.middlewares.append(principal_by_header)
    async with served(app) as url:
        running = Usage(url, app, session)
        await seed(running.ledger)
        yield running


async def seed(ledger: Ledger | None) -> None:
    """Two tenants' records over two days in December, and one in November."""
    assert ledger is not None
    rows = [
        # acme, 1 December: two flash answers (one a hit) and a pro error
        entry("a1", tenant="acme", key_id="k1", at=at("2026-12-01T09:00:00"), cost_usd=0.5),
        entry(
            "a2",
            tenant="acme",
            key_id="k1",
            at=at("2026-12-01T10:00:00"),
            cost_usd=0.0,
            saved_usd=0.5,
            cache_tier="l1",
        ),
        entry(
            "a3",
            tenant="acme",
            key_id="k2",
            model="pro",
            at=at("2026-12-01T23:59:59"),
            status=ERROR,
            error_type="upstream_timeout",
            input_tokens=0,
            output_tokens=0,
            cost_usd=0.0,
        ),
        # acme, 2 December: a templated pro answer
        entry(
            "a4",
            tenant="acme",
            key_id="k2",
            model="pro",
            at=at("2026-12-02T00:00:00"),
            cost_usd=2.0,
            template_id="greet",
            template_version="3",
        ),
        # acme, in November
        entry("a5", tenant="acme", at=at("2026-11-15T12:00:00"), cost_usd=7.0),
        # globex, 1 December
        entry("g1", tenant="globex", key_id="k9", at=at("2026-12-01T12:00:00"), cost_usd=4.0),
    ]
    for row in rows:
        ledger.record(row)
    await flushed(ledger)


DECEMBER = "?from=2026-12-01&to=2026-12-31"


async def test_totals_and_a_daily_series_of_the_callers_tenant(usage: Usage):
    status, body, kind = await usage.get(DECEMBER + "&group_by=day")

    assert (status, kind) == (200, "application/json")
    assert body["from"] == "2026-12-01T00:00:00Z"
    assert body["to"] == "2027-01-01T00:00:00Z"
    assert body["group_by"] == ["day"]
    assert body["tenant"] == "acme"
    assert body["totals"] == {
        "requests": 4,
        "errors": 1,
        "input_tokens": 30,
        "output_tokens": 60,
        "cost_usd": 2.5,
        "saved_usd": 0.5,
        "cache_hits": 1,
    }
    assert [(s["day"], s["requests"], s["cost_usd"]) for s in body["series"]] == [
        ("2026-12-01", 3, 0.5),
        ("2026-12-02", 1, 2.0),
    ]
    assert body["truncated"] is False


async def test_group_by_model_key_and_template(usage: Usage):
    _, by_model, _ = await usage.get(DECEMBER + "&group_by=model")
    assert [(s["model"], s["requests"], s["errors"]) for s in by_model["series"]] == [
        ("flash", 2, 0),
        ("pro", 2, 1),
    ]

    _, by_key, _ = await usage.get(DECEMBER + "&group_by=key,day")
    assert [(s["key"], s["day"], s["requests"]) for s in by_key["series"]] == [
        ("k1", "2026-12-01", 2),
        ("k2", "2026-12-01", 1),
        ("k2", "2026-12-02", 1),
    ]

    _, by_template, _ = await usage.get(DECEMBER + "&group_by=template")
    # NULLs sort first on SQLite and last on PostgreSQL: compared as a set
    templates = {
        (s["template"], s["template_version"], s["requests"]) for s in by_template["series"]
    }
    assert templates == {(None, None, 3), ("greet", "3", 1)}


async def test_a_date_time_range_is_half_open_and_in_utc(usage: Usage):
    # 10:00 UTC on 1 December is included, 23:59:59 is not; +01:00 is converted
    _, body, _ = await usage.get(
        "?from=2026-12-01T11:00:00%2B01:00&to=2026-12-01T23:59:59Z&group_by="
    )
    assert body["from"] == "2026-12-01T10:00:00Z"
    assert body["totals"]["requests"] == 1
    assert body["series"] == []


async def test_the_default_range_is_the_last_thirty_days(usage: Usage):
    before = datetime.now(UTC)
    _, body, _ = await usage.get("")

    assert body["group_by"] == ["day"]
    start, end = (datetime.fromisoformat(body[name]) for name in ("from", "to"))
    assert end >= before
    assert end - start == timedelta(days=30)


async def test_a_request_is_recorded_for_its_tenant_and_key(usage: Usage):
    # Given a request made as tenant globex
    sent = {TENANT_HEADER: "globex"}
    body = {"model": "flash", "prompt": "whose is it?"}
    async with usage.session.post(f"{usage.url}/v1/generate", json=body, headers=sent) as resp:
        assert resp.status == 200
    await flushed(usage.ledger)

    # Then today's usage of globex has it, under its key
    today = datetime.now(UTC).date().isoformat()
    _, seen, _ = await usage.get(f"?from={today}&to={today}&group_by=key", tenant="globex")
    assert [(s["key"], s["requests"]) for s in seen["series"]] == [("key-globex", 1)]


async def test_csv_by_parameter_or_accept_header(usage: Usage):
    status, text, kind = await usage.get(DECEMBER + "&group_by=model&format=csv")
    assert (status, kind) == (200, "text/csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["model"], r["requests"], float(r["cost_usd"])) for r in rows] == [
        ("flash", "2", 0.5),
        ("pro", "2", 2.0),
    ]
    assert list(rows[0]) == [
        "model",
        "requests",
        "errors",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "saved_usd",
        "cache_hits",
    ]

    _, accepted, kind = await usage.get(DECEMBER + "&group_by=", Accept="text/csv")
    assert kind == "text/csv"
    (totals,) = list(csv.DictReader(io.StringIO(accepted)))
    assert totals["requests"] == "4"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?from=yesterday", "from"),
        ("?to=2026-13-01", "to"),
        ("?from=2026-12-02&to=2026-12-01", "from"),
        ("?group_by=day,colour", "group_by"),
        ("?format=xml", "format"),
    ],
)
async def test_bad_parameters_are_a_400_with_the_json_error(usage: Usage, query: str, field: str):
    status, body, kind = await usage.get(query)
    assert (status, kind) == (400, "application/json")
    assert body["error"]["type"] == "invalid_query"
    assert body["error"]["field"] == field
    assert body["error"]["retryable"] is False


async def test_each_tenant_sees_only_its_own_usage(usage: Usage):
    _, acme, _ = await usage.get(DECEMBER + "&group_by=tenant", tenant="acme")
    _, globex, _ = await usage.get(DECEMBER + "&group_by=tenant", tenant="globex")
    _, nobody, _ = await usage.get(DECEMBER + "&group_by=tenant", tenant="initech")

    assert [(s["tenant"], s["requests"]) for s in acme["series"]] == [("acme", 4)]
    assert [(s["tenant"], s["requests"], s["cost_usd"]) for s in globex["series"]] == [
        ("globex", 1, 4.0)
    ]
    assert nobody["totals"]["requests"] == 0
    assert nobody["series"] == []


async def test_a_tenant_may_not_ask_for_another_tenants_usage(usage: Usage):
    status, body, _ = await usage.get(DECEMBER + "&tenant=globex", tenant="acme")
    assert status == 403
    assert body["error"]["type"] == "permission_denied"

    # Naming itself is fine
    status, body, _ = await usage.get(DECEMBER + "&tenant=acme", tenant="acme")
    assert (status, body["totals"]["requests"]) == (200, 4)


async def test_the_admin_sees_every_tenant_and_may_pick_one(usage: Usage):
    _, every, _ = await usage.get(DECEMBER + "&group_by=tenant", admin=True)
    assert every["tenant"] is None
    assert [(s["tenant"], s["requests"]) for s in every["series"]] == [("acme", 4), ("globex", 1)]
    assert every["totals"]["cost_usd"] == 6.5

    _, one, _ = await usage.get(DECEMBER + "&tenant=globex", admin=True)
    assert one["tenant"] == "globex"
    assert one["totals"]["requests"] == 1


async def test_the_series_is_capped_and_says_so(
    database_url: str, emulator: Emulator, session: aiohttp.ClientSession
):
    app = create_app(
        settings_for_test(
            database_url=database_url, gemini_base_url=emulator.base_url, usage_max_series=1
        )
    )
    async with served(app) as url:
        running = Usage(url, app, session)
        await seed(running.ledger)
        # No principal set: the default tenant, which has no records; the admin has them all
        app_ledger = running.ledger
        assert app_ledger is not None
        app_ledger.record(entry("d1", at=at("2026-12-01T01:00:00")))
        app_ledger.record(entry("d2", at=at("2026-12-02T01:00:00")))
        await flushed(app_ledger)
        async with session.get(f"{running.url}/v1/usage{DECEMBER}") as resp:
            body = await resp.json()
        assert [s["day"] for s in body["series"]] == ["2026-12-01"]
        assert (body["truncated"], body["max_series"]) == (True, 1)
        assert body["totals"]["requests"] == 2
