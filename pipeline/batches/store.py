"""Files, batches and their items in the database: tenant-scoped, each write one statement.

An item's result is written once: the update that finishes it only matches a pending row,
and the batch's counts move in the same transaction, so a rerun of an item (a worker killed
mid-batch, a redelivered task) changes nothing and the counts stay exact.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from pipeline.db.batch_tables import BatchItem, BatchRecord, FileRecord
from schemas.batches import FINAL_STATUSES, BatchStatus

PENDING: Final = "pending"
OK: Final = "ok"
ERROR: Final = "error"
# Items that never ran: their lines are made when the batch's files are.
CANCELLED: Final = "cancelled"
EXPIRED: Final = "expired"
# Items inserted per statement (SQLite allows 32,766 bound parameters; 5 a row).
_INSERT_ROWS: Final = 1000


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A file's record without its bytes."""

    id: str
    tenant: str
    purpose: str
    filename: str
    bytes: int
    created_at: datetime
    expires_at: datetime


_FILE_COLUMNS: Final = (
    FileRecord.id,
    FileRecord.tenant,
    FileRecord.purpose,
    FileRecord.filename,
    FileRecord.size,
    FileRecord.created_at,
    FileRecord.expires_at,
)


@dataclass(frozen=True, slots=True)
class NewItem:
    """One validated request of a batch."""

    custom_id: str
    line: int
    request: dict[str, Any]


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


class BatchStore:
    """Reads and writes the batch tables of one database."""

    def __init__(self, engine: AsyncEngine, retention_s: float) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._retention = timedelta(seconds=retention_s)

    async def add_file(
        self, *, file_id: str, tenant: str, purpose: str, filename: str, content: bytes
    ) -> FileInfo:
        """Store a file; it expires after the retention."""
        now = utcnow()
        info = FileInfo(
            file_id, tenant, purpose, filename, len(content), now, now + self._retention
        )
        async with self._sessions.begin() as session:
            session.add(
                FileRecord(
                    id=info.id,
                    tenant=tenant,
                    purpose=purpose,
                    filename=filename,
                    size=info.bytes,
                    created_at=now,
                    expires_at=info.expires_at,
                    content=content,
                )
            )
        return info

    async def file(self, tenant: str, file_id: str) -> FileInfo | None:
        """A file of `tenant`'s, without its bytes."""
        query = select(*_FILE_COLUMNS).where(FileRecord.id == file_id, FileRecord.tenant == tenant)
        async with self._sessions() as session:
            row = (await session.execute(query)).first()
        return None if row is None else FileInfo(*row)

    async def files(
        self,
        tenant: str,
        *,
        purpose: str | None,
        after: str | None,
        limit: int,
        newest_first: bool,
    ) -> tuple[list[FileInfo], bool]:
        """A page of `tenant`'s files (of `purpose`, when given) after the one named, by
        creation; and whether there are more."""
        query = select(*_FILE_COLUMNS).where(FileRecord.tenant == tenant)
        if purpose is not None:
            query = query.where(FileRecord.purpose == purpose)
        if after is not None:
            query = query.where(FileRecord.id < after if newest_first else FileRecord.id > after)
        order = FileRecord.id.desc() if newest_first else FileRecord.id.asc()
        query = query.order_by(order).limit(limit + 1)
        async with self._sessions() as session:
            found = [FileInfo(*row) for row in await session.execute(query)]
        return found[:limit], len(found) > limit

    async def content(self, tenant: str, file_id: str) -> bytes | None:
        """A file's bytes."""
        query = select(FileRecord.content).where(
            FileRecord.id == file_id, FileRecord.tenant == tenant
        )
        async with self._sessions() as session:
            return (await session.execute(query)).scalar_one_or_none()

    async def delete_file(self, tenant: str, file_id: str) -> bool:
        """Delete a file; whether there was one."""
        query = delete(FileRecord).where(FileRecord.id == file_id, FileRecord.tenant == tenant)
        async with self._sessions.begin() as session:
            result = await session.execute(query)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def add_batch(self, batch: BatchRecord, items: Sequence[NewItem]) -> None:
        """Store a batch and its items together."""
        async with self._sessions.begin() as session:
            session.add(batch)
            await session.flush()
            for start in range(0, len(items), _INSERT_ROWS):
                rows = [
                    {
                        "batch_id": batch.id,
                        "custom_id": item.custom_id,
                        "line": item.line,
                        "request": item.request,
                        "status": PENDING,
                    }
                    for item in items[start : start + _INSERT_ROWS]
                ]
                await session.execute(insert(BatchItem), rows)

    async def batch(self, batch_id: str, tenant: str | None = None) -> BatchRecord | None:
        """A batch (of `tenant`'s, when given)."""
        query = select(BatchRecord).where(BatchRecord.id == batch_id)
        if tenant is not None:
            query = query.where(BatchRecord.tenant == tenant)
        async with self._sessions() as session:
            return (await session.execute(query)).scalar_one_or_none()

    async def batches(
        self, tenant: str, *, after: str | None, limit: int
    ) -> tuple[list[BatchRecord], bool]:
        """A page of `tenant`'s batches, newest first, after the one named; and whether more."""
        query = select(BatchRecord).where(BatchRecord.tenant == tenant)
        if after is not None:
            query = query.where(BatchRecord.id < after)
        query = query.order_by(BatchRecord.id.desc()).limit(limit + 1)
        async with self._sessions() as session:
            found = list((await session.execute(query)).scalars())
        return found[:limit], len(found) > limit

    async def move(
        self, batch_id: str, to: BatchStatus, when: Iterable[BatchStatus], **fields: Any
    ) -> bool:
        """Move a batch to `to` (stamping `<to>_at`) if it is in one of `when`; whether it did."""
        stamp = {"status": to.value, f"{to.value}_at": utcnow()}
        return await self.update(batch_id, when, **{**stamp, **fields})

    async def update(self, batch_id: str, when: Iterable[BatchStatus], **fields: Any) -> bool:
        """Set fields of a batch if it is in one of `when` (its status unchanged); whether
        it was."""
        query = (
            update(BatchRecord)
            .where(BatchRecord.id == batch_id, BatchRecord.status.in_([s.value for s in when]))
            .values(**fields)
        )
        async with self._sessions.begin() as session:
            result = await session.execute(query)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def pending(self, batch_id: str, first: int, last: int) -> list[NewItem]:
        """The items on lines [first, last) not finished yet."""
        query = (
            select(BatchItem.custom_id, BatchItem.line, BatchItem.request)
            .where(
                BatchItem.batch_id == batch_id,
                BatchItem.line >= first,
                BatchItem.line < last,
                BatchItem.status == PENDING,
            )
            .order_by(BatchItem.line)
        )
        async with self._sessions() as session:
            return [NewItem(*row) for row in await session.execute(query)]

    async def finish_item(
        self, batch_id: str, custom_id: str, *, ok: bool, result: dict[str, Any]
    ) -> bool:
        """Write an item's one result and count it; False if it was finished already."""
        async with self._sessions.begin() as session:
            done = await session.execute(
                update(BatchItem)
                .where(
                    BatchItem.batch_id == batch_id,
                    BatchItem.custom_id == custom_id,
                    BatchItem.status == PENDING,
                )
                .values(status=OK if ok else ERROR, result=result, finished_at=utcnow())
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                return False
            counter = BatchRecord.completed if ok else BatchRecord.failed
            await session.execute(
                update(BatchRecord).where(BatchRecord.id == batch_id).values({counter: counter + 1})
            )
        return True

    async def finish_items(
        self, batch_id: str, results: Sequence[tuple[str, bool, dict[str, Any]]]
    ) -> int:
        """Write many items' results (custom id, ok, line) and count them, in one
        transaction; how many were still pending (the others are left as they were)."""
        ok = bad = 0
        now = utcnow()
        async with self._sessions.begin() as session:
            for custom_id, good, result in results:
                done = await session.execute(
                    update(BatchItem)
                    .where(
                        BatchItem.batch_id == batch_id,
                        BatchItem.custom_id == custom_id,
                        BatchItem.status == PENDING,
                    )
                    .values(status=OK if good else ERROR, result=result, finished_at=now)
                )
                if done.rowcount:  # type: ignore[attr-defined]
                    ok, bad = (ok + 1, bad) if good else (ok, bad + 1)
            if ok or bad:
                await session.execute(
                    update(BatchRecord)
                    .where(BatchRecord.id == batch_id)
                    .values(completed=BatchRecord.completed + ok, failed=BatchRecord.failed + bad)
                )
        return ok + bad

    async def unfinished(self, batch_id: str) -> bool:
        """Whether any item of the batch is not finished yet."""
        query = (
            select(BatchItem.line)
            .where(BatchItem.batch_id == batch_id, BatchItem.status == PENDING)
            .limit(1)
        )
        async with self._sessions() as session:
            return (await session.execute(query)).first() is not None

    async def last_finished(self, batch_id: str) -> datetime | None:
        """When an item of the batch last finished."""
        query = select(func.max(BatchItem.finished_at)).where(BatchItem.batch_id == batch_id)
        async with self._sessions() as session:
            return (await session.execute(query)).scalar_one_or_none()

    async def pending_chunks(self, batch_id: str, size: int, limit: int) -> list[int]:
        """The first `limit` chunks (of `size` lines) with a pending item."""
        chunk = (BatchItem.line // size).label("chunk")
        query = (
            select(chunk)
            .where(BatchItem.batch_id == batch_id, BatchItem.status == PENDING)
            .group_by(chunk)
            .order_by(chunk)
            .limit(limit)
        )
        async with self._sessions() as session:
            return [int(found) for found in (await session.execute(query)).scalars()]

    async def close_pending(self, batch_id: str, status: str) -> int:
        """End every pending item as `status` (cancelled, expired), counted as failed."""
        async with self._sessions.begin() as session:
            done = await session.execute(
                update(BatchItem)
                .where(BatchItem.batch_id == batch_id, BatchItem.status == PENDING)
                .values(status=status, finished_at=utcnow())
            )
            closed = int(done.rowcount)  # type: ignore[attr-defined]
            if closed:
                await session.execute(
                    update(BatchRecord)
                    .where(BatchRecord.id == batch_id)
                    .values(failed=BatchRecord.failed + closed)
                )
        return closed

    async def results(self, batch_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
        """Every finished item's custom id, status and line (None if it never ran), in order."""
        query = (
            select(BatchItem.custom_id, BatchItem.status, BatchItem.result)
            .where(BatchItem.batch_id == batch_id, BatchItem.status != PENDING)
            .order_by(BatchItem.line)
        )
        async with self._sessions() as session:
            return [(c, s, r) for c, s, r in await session.execute(query)]

    async def end_batch(
        self,
        batch_id: str,
        *,
        when: BatchStatus,
        to: BatchStatus,
        files: Sequence[FileRecord],
        **fields: Any,
    ) -> bool:
        """Store the batch's files and move it from `when` to `to`, together; whether it did."""
        values = {"status": to.value, f"{to.value}_at": utcnow(), **fields}
        async with self._sessions.begin() as session:
            moved = await session.execute(
                update(BatchRecord)
                .where(BatchRecord.id == batch_id, BatchRecord.status == when.value)
                .values(**values)
            )
            if not moved.rowcount:  # type: ignore[attr-defined]
                return False  # another run ended it: nothing was changed
            session.add_all(files)
        return True

    def file_row(self, *, file_id: str, tenant: str, purpose: str, content: bytes) -> FileRecord:
        """A file's row (written by `end_batch`)."""
        now = utcnow()
        return FileRecord(
            id=file_id,
            tenant=tenant,
            purpose=purpose,
            filename=f"{file_id}.jsonl",
            size=len(content),
            created_at=now,
            expires_at=now + self._retention,
            content=content,
        )

    async def open_batches(self, limit: int) -> list[BatchRecord]:
        """Batches that have not ended (for the sweeper)."""
        ended = [s.value for s in (BatchStatus.FAILED, BatchStatus.COMPLETED)]
        ended += [BatchStatus.EXPIRED.value, BatchStatus.CANCELLED.value]
        query = select(BatchRecord).where(BatchRecord.status.not_in(ended)).limit(limit)
        async with self._sessions() as session:
            return list((await session.execute(query)).scalars())

    async def purge(self) -> int:
        """Delete the files and ended batches past their retention; how many went."""
        now = utcnow()
        async with self._sessions.begin() as session:
            files = await session.execute(delete(FileRecord).where(FileRecord.expires_at < now))
            old = now - self._retention
            ended = [status.value for status in FINAL_STATUSES]
            batches = await session.execute(
                delete(BatchRecord).where(
                    BatchRecord.created_at < old, BatchRecord.status.in_(ended)
                )
            )
        return int(files.rowcount) + int(batches.rowcount)  # type: ignore[attr-defined]

    async def count(self, batch_id: str) -> int:
        """How many items a batch has."""
        query = select(func.count()).where(BatchItem.batch_id == batch_id)
        async with self._sessions() as session:
            return int((await session.execute(query)).scalar_one())
