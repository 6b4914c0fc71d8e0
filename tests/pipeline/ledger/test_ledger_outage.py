"""The ledger survives its database going away and coming back: nothing within the spool's
bound is lost, and what went past it is counted."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.db import create_engine
from pipeline.ledger import Ledger, LedgerLimits, RowWriter
from tests.support.databases import postgres_database
from tests.support.ledger import FLUSH_S, entry, flushed, migrated_engine, usage_rows
from tests.support.polling import poll
from tests.support.settings import settings_for_test
from tests.support.tcp_proxy import Proxy

POSTGRES_ADDRESS = ("127.0.0.1", 5432)


@pytest.fixture
async def database() -> AsyncIterator[tuple[str, AsyncEngine]]:
    """A fresh PostgreSQL database: its URL, and a direct engine to read it with."""
    async with postgres_database() as url, migrated_engine(url) as direct:
        yield url, direct


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    proxy = Proxy(POSTGRES_ADDRESS)
    await proxy.open()
    yield proxy
    await proxy.cut()


def _through(proxy: Proxy, url: str) -> AsyncEngine:
    """An engine that reaches the database through the proxy."""
    proxied = make_url(url).set(host="127.0.0.1", port=proxy.port)
    settings = settings_for_test(database_url=proxied.render_as_string(hide_password=False))
    return create_engine(settings)


async def test_records_wait_while_the_database_is_away_and_are_written_when_it_is_back(
    database: tuple[str, AsyncEngine], proxy: Proxy
):
    url, direct = database
    engine = _through(proxy, url)
    ledger = Ledger(
        RowWriter(engine),
        LedgerLimits(batch_size=50, flush_interval_s=0.05, spool_max=1000, retry_max_s=0.2),
    )
    ledger.start()
    try:
        # Given some records written while the database is there
        for i in range(30):
            ledger.record(entry(f"before-{i}"))
        await flushed(ledger)

        # When the connection is cut and more are recorded (fewer than the spool holds)
        await proxy.cut()
        for i in range(400):
            ledger.record(entry(f"during-{i}"))
        await poll(
            lambda: _now(ledger.failed_writes),
            lambda n: n >= 2,
            timeout_s=FLUSH_S,
            what="writes failing while the database is away",
        )
        assert not ledger.database_up
        assert ledger.pending == 400
        assert len(await usage_rows(direct)) == 30

        # And the database comes back
        await proxy.open()
        await flushed(ledger)

        # Then every record is there, once, and none was dropped
        ids = [r["request_id"] for r in await usage_rows(direct)]
        expected = [f"before-{i}" for i in range(30)] + [f"during-{i}" for i in range(400)]
        assert sorted(ids) == sorted(expected)
        assert (ledger.written, ledger.dropped, ledger.pending) == (430, 0, 0)
        assert ledger.database_up
    finally:
        await ledger.stop(FLUSH_S)
        await engine.dispose()


async def test_past_the_spool_bound_the_oldest_are_dropped_and_counted(
    database: tuple[str, AsyncEngine], proxy: Proxy
):
    url, direct = database
    engine = _through(proxy, url)
    ledger = Ledger(
        RowWriter(engine),
        LedgerLimits(batch_size=10, flush_interval_s=0.05, spool_max=100, retry_max_s=0.2),
    )
    ledger.start()
    try:
        # Given the database away and the writer holding its first batch in hand
        await proxy.cut()
        for i in range(10):
            ledger.record(entry(f"first-{i}"))
        await poll(
            lambda: _now(ledger.failed_writes),
            lambda n: n >= 1,
            timeout_s=FLUSH_S,
            what="a write failing",
        )

        # When 250 more arrive than the spool of 100 holds
        for i in range(250):
            ledger.record(entry(f"later-{i}"))
        assert ledger.dropped == 150

        # Then once it is back, the batch in hand and the newest 100 are written
        await proxy.open()
        await flushed(ledger)
        ids = {r["request_id"] for r in await usage_rows(direct)}
        assert ids == {f"first-{i}" for i in range(10)} | {f"later-{i}" for i in range(150, 250)}
        assert (ledger.written, ledger.dropped) == (110, 150)
    finally:
        await ledger.stop(FLUSH_S)
        await engine.dispose()


async def _now(value: int) -> int:
    return value


async def test_a_database_that_stops_answering_is_given_up_on_and_retried(
    database: tuple[str, AsyncEngine], proxy: Proxy
):
    url, direct = database
    engine = _through(proxy, url)
    limits = LedgerLimits(batch_size=5, flush_interval_s=0.05, retry_max_s=0.2, write_timeout_s=0.5)
    ledger = Ledger(RowWriter(engine), limits)
    ledger.start()
    try:
        # Given a connection open to the database
        ledger.record(entry("warm-up"))
        await flushed(ledger)

        # When the connection goes silent (no reset, no close) while records come in
        await proxy.freeze()
        for i in range(5):
            ledger.record(entry(f"silent-{i}"))
        await poll(
            lambda: _now(ledger.failed_writes),
            lambda n: n >= 1,
            timeout_s=FLUSH_S,
            what="the silent write given up",
        )

        # Then the writer gave up on it, and a new connection writes them
        await flushed(ledger)
        ids = {r["request_id"] for r in await usage_rows(direct)}
        assert ids == {"warm-up"} | {f"silent-{i}" for i in range(5)}
    finally:
        await ledger.stop(FLUSH_S)
        await engine.dispose()
