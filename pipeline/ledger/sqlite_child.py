"""The SQLite ledger's writing process: batches of rows in on stdin, one reply a batch out.

`SqliteRowWriter` (pipeline/ledger/sqlite_writer.py) runs this file as a script, so that it
imports only the standard library and orjson and starts in a few tens of milliseconds.

In: frames, each a 4-byte big-endian length and that many bytes of JSON. The first is the
plan, `{"sql": INSERT, "times": [index, ...], "limits": [[index, length], ...]}`; every
other one a batch, a list of rows (the statement's parameters; times as ISO 8601 text).
Out: a line a batch, `ok`, `refused WHY` (its content: writing it again cannot succeed) or
`error WHY` (the database: the batch may be tried again). It ends when its input ends.
"""

import contextlib
import os
import sqlite3
import struct
import sys
from datetime import datetime
from typing import Any, BinaryIO, Final, NamedTuple

import orjson

_HEAD: Final = struct.Struct(">I")
_NICE: Final = 10
# What a batch's content can be refused for; anything else of sqlite3's is the database's.
_REFUSED: Final = (sqlite3.DataError, sqlite3.IntegrityError, ValueError, TypeError)


class Plan(NamedTuple):
    """The statement, and what is done to a row's values before it is bound."""

    sql: str
    times: tuple[int, ...]
    limits: tuple[tuple[int, int], ...]


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame's bytes; None at the end of the input."""
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    (size,) = _HEAD.unpack(head)
    body = stream.read(size)
    return body if len(body) == size else None


def frame(payload: bytes) -> bytes:
    """`payload` as a frame."""
    return _HEAD.pack(len(payload)) + payload


def stored_time(text: str) -> str:
    """An ISO 8601 time as SQLAlchemy's SQLite DATETIME stores it: its fields as they are,
    any zone dropped."""
    return datetime.fromisoformat(text).isoformat(" ", "microseconds")[:26]


def prepared(plan: Plan, rows: list[list[Any]]) -> list[list[Any]]:
    """`rows` with their times in SQLite's text and their strings cut to their columns."""
    for row in rows:
        for index in plan.times:
            if row[index] is not None:
                row[index] = stored_time(row[index])
        for index, length in plan.limits:
            value = row[index]
            if value is not None and len(value) > length:
                row[index] = value[:length]
    return rows


class Writer:
    """One connection to the file, opened again after it failed."""

    def __init__(self, path: str, busy_timeout_s: float, plan: Plan) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._plan = plan
        self._connection: sqlite3.Connection | None = None

    def write(self, payload: bytes) -> str:
        """Insert a batch in one transaction; the reply line."""
        try:
            rows = prepared(self._plan, orjson.loads(payload))
        except _REFUSED as exc:
            return _reply("refused", exc)
        connection = None
        try:
            connection = self._connection or self._connect()
            connection.execute("BEGIN")
            connection.executemany(self._plan.sql, rows)
            connection.execute("COMMIT")
        except _REFUSED as exc:
            self._rollback(connection)
            return _reply("refused", exc)
        except sqlite3.Error as exc:
            self._close()
            return _reply("error", exc)
        return "ok"

    def _connect(self) -> sqlite3.Connection:
        # isolation_level None: the transaction is this writer's own BEGIN and COMMIT.
        connection = sqlite3.connect(self._path, timeout=self._busy_timeout_s, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _rollback(self, connection: sqlite3.Connection | None) -> None:
        if connection is None or not connection.in_transaction:
            return
        try:
            connection.execute("ROLLBACK")
        except sqlite3.Error:
            self._close()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _reply(verdict: str, exc: Exception) -> str:
    why = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return f"{verdict} {why}"


def step_aside() -> None:
    """Let the processes that answer requests go first when the CPU is short.

    A batch arriving wakes this process, and Linux likes to run a task woken by a pipe on
    the waker's CPU, at once: ~2 ms of inserts would stall the event loop that wrote it.
    SCHED_BATCH takes away that wake-up preemption; the nice value its share of a busy CPU.
    """
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    with contextlib.suppress(OSError):
        os.nice(_NICE)


def main(argv: list[str]) -> int:
    """Write batches until the input ends."""
    path, busy_timeout_s = argv[1], float(argv[2])
    step_aside()
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    first = read_frame(source)
    if first is None:
        return 0
    raw = orjson.loads(first)
    plan = Plan(raw["sql"], tuple(raw["times"]), tuple((i, n) for i, n in raw["limits"]))
    writer = Writer(path, busy_timeout_s, plan)
    while (payload := read_frame(source)) is not None:
        sink.write(writer.write(payload).encode() + b"\n")
        sink.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
