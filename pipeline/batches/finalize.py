"""The end of a batch: its output and error files made once, and its last status.

Whoever finds a running batch with no pending item left moves it to `finalizing` (one of
them wins: the move only matches a batch still `in_progress`), makes its files from the
items' rows and ends it, files and status in one transaction. A batch left in `finalizing`
by a finalizer that died is finished by the sweeper the same way.
"""

from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson

from pipeline.batches.ids import new_id
from pipeline.batches.items import ended_line
from pipeline.batches.store import CANCELLED, EXPIRED, OK, BatchStore
from pipeline.db.batch_tables import BatchRecord
from schemas.batches import BatchStatus

Line = dict[str, Any]
# Told of each batch that ended (its progress and webhooks).
OnEnd = Callable[[BatchRecord], Awaitable[None]]

_NEVER_RAN: Final = {
    CANCELLED: ("batch_cancelled", "the batch was cancelled before this request ran"),
    EXPIRED: ("batch_expired", "the batch's completion window ended before this request ran"),
}


async def finalize(
    store: BatchStore,
    batch_id: str,
    on_end: OnEnd | None = None,
    *,
    failure: dict[str, Any] | None = None,
) -> bool:
    """End the batch if nothing of it is pending; whether this call ended it.

    With a `failure` (an error object) a running batch ends `failed` with it (a provider
    batch whose job failed), its files made all the same.
    """
    batch = await store.batch(batch_id)
    # The counts move with each item's result (one transaction), so counts short of the
    # total mean an item is pending: no need to look through the items' rows for one.
    if batch is None or batch.completed + batch.failed < batch.total:
        return False
    if await store.unfinished(batch_id):
        return False
    status = BatchStatus(batch.status)
    if status is BatchStatus.IN_PROGRESS:
        if not await store.move(batch_id, BatchStatus.FINALIZING, [BatchStatus.IN_PROGRESS]):
            return False
        status = BatchStatus.FINALIZING
    elif status not in (BatchStatus.FINALIZING, BatchStatus.CANCELLING):
        return False
    output, errors, expired = await _lines(store, batch_id)
    to = BatchStatus.CANCELLED if status is BatchStatus.CANCELLING else BatchStatus.COMPLETED
    if to is BatchStatus.COMPLETED and expired:
        to = BatchStatus.EXPIRED
    fields: dict[str, Any] = {}
    if to is BatchStatus.COMPLETED and failure is not None:
        to, fields["errors"] = BatchStatus.FAILED, {"object": "list", "data": [failure]}
    files = []
    for kind, lines in (("output", output), ("error", errors)):
        if lines:
            file_id = new_id("file-")
            content = b"".join(orjson.dumps(one) + b"\n" for one in lines)
            files.append(
                store.file_row(
                    file_id=file_id, tenant=batch.tenant, purpose="batch_output", content=content
                )
            )
            fields[f"{kind}_file_id"] = file_id
    if not await store.end_batch(batch_id, when=status, to=to, files=files, **fields):
        return False
    ended = await store.batch(batch_id)
    if on_end is not None and ended is not None:
        await on_end(ended)
    return True


async def _lines(store: BatchStore, batch_id: str) -> tuple[list[Line], list[Line], bool]:
    output: list[Line] = []
    errors: list[Line] = []
    expired = False
    for custom_id, status, result in await store.results(batch_id):
        if status in _NEVER_RAN:
            expired = expired or status == EXPIRED
            errors.append(ended_line(custom_id, *_NEVER_RAN[status]))
        elif result is not None:
            (output if status == OK else errors).append(result)
    return output, errors, expired
