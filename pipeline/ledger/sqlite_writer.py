"""Writing usage rows into a SQLite file from a small process of its own.

SQLite's inserts are CPU: ~20 us a row with the table's two indexes, which on the event loop
cost cache hits a fifth of their throughput. Through SQLAlchemy's async engine a row cost
more still (aiosqlite hands every call to a thread), and a thread of the writer's own cost
the loop more than its CPU, in waits for the GIL. So a child process (pipeline/ledger/
sqlite_child.py: the standard library and orjson only) does the inserts, a transaction a
batch, and checkpoints the WAL itself; the loop's part is a tuple and orjson a row, and a
pipe write and a reply line a batch.

The child is started at the first batch, and again after it failed: a batch whose reply did
not come (the child gone, the write timed out, a cancel) raises, and the ledger retries it.
"""

import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from pipeline.ledger.entry import UsageEntry
from pipeline.ledger.sqlite_child import frame
from pipeline.ledger.writer import RowShape, RowWriter, UnwritableRows

_CHILD: Final = str(Path(__file__).with_name("sqlite_child.py"))
# The child waits this long for another writer's lock (an admin change, a key's last use)
# before it gives the batch back, to be retried.
_BUSY_TIMEOUT_S: Final = 1.0
_EXIT_WAIT_S: Final = 5.0
# Of the child's error output, what a failure's message carries.
_STDERR_TAIL: Final = 2000


class LedgerWriterFailed(Exception):
    """Raised when the database did not take a batch: the batch may be tried again."""


class SqliteRowWriter:
    """Inserts batches of usage entries into a SQLite file, through its writing process."""

    def __init__(self, engine: AsyncEngine, *, busy_timeout_s: float = _BUSY_TIMEOUT_S) -> None:
        database = engine.url.database
        if not database or database == ":memory:":
            raise ValueError("SqliteRowWriter needs a SQLite file, not an in-memory database")
        shape = RowShape(engine.dialect)
        if not shape.only_times_processed:
            raise ValueError("the SQLite writer's child converts times only")
        self._argv = (sys.executable, "-P", _CHILD, database, f"{busy_timeout_s:g}")
        self._values = shape.values
        self._plan = frame(
            orjson.dumps({"sql": shape.sql, "times": shape.times, "limits": shape.limits})
        )
        self._child: asyncio.subprocess.Process | None = None
        # Children killed, until they are reaped.
        self._reaping: set[asyncio.Task[int]] = set()
        # A forked process (a prefork worker) must not talk to its parent's child.
        self._owner = os.getpid()

    @property
    def child_pid(self) -> int | None:
        """The writing process's pid, while it runs."""
        return None if self._child is None else self._child.pid

    async def write(self, entries: Sequence[UsageEntry]) -> None:
        """Insert `entries` in one transaction; raises when they were not written."""
        try:
            payload = orjson.dumps([self._values(entry) for entry in entries])
        except (TypeError, AttributeError) as exc:
            raise UnwritableRows(f"{type(exc).__name__}: {exc}") from exc
        child = await self._running()
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            child.stdin.write(frame(payload))
            await child.stdin.drain()
            reply = await child.stdout.readline()
        except BaseException:
            # A reply may still come (a cancel, a timeout): the pipe is out of step.
            self._abandon()
            raise
        if not reply:
            raise LedgerWriterFailed(f"the ledger's SQLite writer exited: {await self._end()}")
        verdict, _, why = reply.decode().rstrip("\n").partition(" ")
        if verdict == "refused":
            raise UnwritableRows(why)
        if verdict != "ok":
            raise LedgerWriterFailed(why)

    async def close(self) -> None:
        """End the writing process: its input closed, it finishes and exits."""
        await self._end()
        await asyncio.gather(*self._reaping, return_exceptions=True)

    async def _running(self) -> asyncio.subprocess.Process:
        child = self._child
        if child is not None and child.returncode is None and self._owner == os.getpid():
            return child
        if child is not None and self._owner == os.getpid():
            await self._end()
        self._child, self._owner = None, os.getpid()
        child = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert child.stdin is not None
        child.stdin.write(self._plan)
        self._child = child
        return child

    async def _end(self) -> str:
        """Stop the child (its input closed, then killed if it lingers); its error output."""
        child, self._child = self._child, None
        if child is None:
            return ""
        assert child.stdin is not None
        assert child.stderr is not None
        child.stdin.close()
        try:
            async with asyncio.timeout(_EXIT_WAIT_S):
                await child.wait()
        except TimeoutError:
            _kill(child)
            await child.wait()
        except asyncio.CancelledError:
            self._reap(child)
            raise
        errors = await child.stderr.read()
        return errors.decode(errors="replace")[-_STDERR_TAIL:].strip() or f"exit {child.returncode}"

    def _abandon(self) -> None:
        """Kill the child at once (no wait: this may be a cancel), and reap it later."""
        child, self._child = self._child, None
        if child is not None:
            self._reap(child)

    def _reap(self, child: asyncio.subprocess.Process) -> None:
        _kill(child)
        task = asyncio.ensure_future(child.wait())
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)


def _kill(child: asyncio.subprocess.Process) -> None:
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.kill()


def row_writer(engine: AsyncEngine) -> SqliteRowWriter | RowWriter:
    """The writer for `engine`'s database: a SQLite file's own, else the async engine's."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return SqliteRowWriter(engine)
    return RowWriter(engine)
