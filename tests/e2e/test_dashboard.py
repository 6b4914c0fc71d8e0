"""The dashboard in a real headless Chromium: it loads clean and shows what /v1/usage says.

Chromium is Debian's (`/usr/bin/chromium`, installed by .ci/run when missing), driven by
Playwright; no browser is downloaded. A screenshot of each run is kept under
build/test-artifacts/.
"""

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

# Waits by locator: the page's CSP forbids eval, which string predicates may need.
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from tests.support.gateway import Gateway, GatewayFactory
from tests.support.ledger import entry, flushed
from tests.support.tenants import ADMIN_KEY, tenant_with_key

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
NOW = datetime.now(UTC)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Chromium is not installed: apt-get install -y chromium (.ci/run does)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        await launched.close()


async def _seed(gateway: Gateway, other: str = "default") -> None:
    """Three days of usage: two models, a hit, an error; the last two of tenant `other`."""
    ledger = gateway.services.ledger
    assert ledger is not None
    rows = [
        ("default", "flash", 0.0020, 0.0, None, "ok", None, 120.0, timedelta(days=2)),
        ("default", "flash", 0.0, 0.0020, "l1", "ok", None, 1.0, timedelta(days=1)),
        ("default", "lite", 0.0005, 0.0, None, "ok", None, 80.0, timedelta(days=1)),
        (other, "flash", 0.0030, 0.0, None, "ok", None, 150.0, timedelta(hours=3)),
        (other, "flash", 0.0, 0.0, None, "error", "upstream_unavailable", 30.0, timedelta(0)),
    ]
    for number, (tenant, model, cost, saved, tier, status, error, latency, ago) in enumerate(rows):
        ledger.record(
            entry(
                f"seed-{number}",
                tenant=tenant,
                model=model,
                cost_usd=cost,
                saved_usd=saved,
                cache_tier=tier,
                status=status,
                error_type=error,
                latency_ms=latency,
                at=NOW - ago - timedelta(minutes=5),
            )
        )
    await flushed(ledger)


async def _open(browser: Browser, url: str) -> tuple[Page, list[str]]:
    page = await browser.new_page(viewport={"width": 1400, "height": 1800})
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    await page.goto(url + "/dashboard")
    return page, problems


async def _usage(gateway: Gateway, group: str, key: str | None = None) -> dict[str, object]:
    since = (NOW - timedelta(days=7)).isoformat()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with gateway.session.get(
        f"{gateway.url}/v1/usage", params={"from": since, "group_by": group}, headers=headers
    ) as resp:
        assert resp.status == 200
        body: dict[str, object] = await resp.json()
        return body


async def test_the_page_shows_the_usage_api_numbers(
    start_gateway: GatewayFactory, browser: Browser
) -> None:
    gateway = await start_gateway()
    await _seed(gateway)
    usage = await _usage(gateway, "day")
    totals = usage["totals"]
    assert isinstance(totals, dict)
    assert totals["requests"] == 5  # the seed is all there, as the page will show it

    page, problems = await _open(browser, gateway.url)
    await page.wait_for_selector("#board:not([hidden])")
    await expect(page.locator("#total-requests")).not_to_have_text("-")

    tiles = {
        name: await page.inner_text(f"#{name}")
        for name in ("total-requests", "total-errors", "total-cost", "total-saved", "hit-ratio")
    }
    assert tiles == {
        "total-requests": str(totals["requests"]),
        "total-errors": str(totals["errors"]),
        "total-cost": f"{totals['cost_usd']:.6f}",
        "total-saved": f"{totals['saved_usd']:.6f}",
        "hit-ratio": f"{100 * totals['cache_hits'] / totals['requests']:.1f} %",
    }
    models = await page.inner_text("#by-model")
    assert "flash" in models
    assert "lite" in models
    assert "default" in await page.inner_text("#by-tenant")
    assert "upstream_unavailable" in await page.inner_text("#errors")
    assert "p50" not in await page.inner_text("#latency")  # numbers, not a placeholder
    assert "ms" in await page.inner_text("#latency")
    assert await page.locator("#chart-requests canvas").count() == 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert problems == []


async def test_with_keys_required_the_page_asks_for_the_admin_key(
    start_gateway: GatewayFactory, browser: Browser
) -> None:
    gateway = await start_gateway(admin_key=ADMIN_KEY)
    key, _ = await tenant_with_key(gateway, "acme")
    await _seed(gateway, other="acme")
    usage = await _usage(gateway, "day", ADMIN_KEY)

    page, problems = await _open(browser, gateway.url)
    await page.wait_for_selector("#login:not([hidden])")
    assert await page.locator("#board").is_hidden()
    # A tenant's key is not enough: the dashboard shows every tenant.
    await page.fill("#admin-key", key)
    await page.click("#login button")
    await expect(page.locator("#status")).to_contain_text("admin")
    assert await page.locator("#board").is_hidden()
    await page.fill("#admin-key", ADMIN_KEY)
    await page.click("#login button")
    await page.wait_for_selector("#board:not([hidden])")
    await expect(page.locator("#total-requests")).not_to_have_text("-")
    totals = usage["totals"]
    assert isinstance(totals, dict)
    assert await page.inner_text("#total-requests") == str(totals["requests"]) == "5"
    tenants = await page.inner_text("#by-tenant")
    assert "acme" in tenants
    assert "default" in tenants
    assert "every tenant" in await page.inner_text("#scope")
    # The browser's own 401s and 403s are expected here; nothing else may go wrong.
    assert [p for p in problems if "401" not in p and "403" not in p] == []
