"""The batch sweeper: expiry, re-drives of stalled batches, stuck ends, and the retention.

Every worker runs one. A batch past its `expires_at` is expired (what did not run gets a
`batch_expired` line); a provider batch whose poll is overdue by `stall_s` gets its poll
task again (pipeline.batches.provider); a running batch none of whose items finished for
`stall_s` (the jobs' stall bound) gets lanes again (its lane tasks were lost); a batch
left `finalizing` or `cancelling` with nothing pending (its finalizer died) is finished;
files and batches past the retention are deleted. Sweepers of several workers may meet on
one batch: every end is a compare-and-set, so one of them wins.
"""

import time
from typing import Final

import structlog
from sqlalchemy.exc import SQLAlchemyError

from pipeline.batches.execution import BatchRunner
from pipeline.batches.finalize import finalize
from pipeline.batches.provider import ProviderRunner
from pipeline.periodic import Periodic
from schemas.batches import BatchStatus

log = structlog.get_logger("promptbus.batches")

_OPEN_MAX: Final = 500


class BatchSweeper:
    """A task on the stage loop sweeping batches every `interval_s`."""

    def __init__(
        self,
        runner: BatchRunner,
        *,
        interval_s: float,
        stall_s: float,
        provider: ProviderRunner | None = None,
    ) -> None:
        self._runner = runner
        self._provider = provider
        self._stall_s = stall_s
        self._rounds = Periodic(
            "promptbus-batch-sweeper",
            interval_s,
            self.sweep,
            expected=(SQLAlchemyError, OSError),
            what="batch sweep",
            logger="promptbus.batches",
        )

    def start(self) -> None:
        """Start sweeping (on the running loop)."""
        self._rounds.start()

    async def stop(self) -> None:
        """Stop sweeping."""
        await self._rounds.stop()

    async def sweep(self) -> int:
        """One sweep; how many batches it ended."""
        runner, ended = self._runner, 0
        store = runner.store
        now = time.time()
        for batch in await store.open_batches(_OPEN_MAX):
            if batch.mode == "provider" and batch.status != BatchStatus.FINALIZING:
                # Its own poll task ends it, window and cancel included; a lost one is re-armed.
                if self._provider is not None:
                    await self._provider.rearm(batch, self._stall_s)
            elif batch.status == BatchStatus.IN_PROGRESS and now >= batch.expires_at.timestamp():
                await runner.expire(batch.id)
                ended += 1
            elif batch.status == BatchStatus.IN_PROGRESS:
                await runner.redrive(batch, self._stall_s)
            elif batch.status in (BatchStatus.FINALIZING, BatchStatus.CANCELLING):
                ended += int(await finalize(store, batch.id, runner.on_end))
        await store.purge()
        return ended
