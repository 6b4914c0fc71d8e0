"""A task on the running loop that does its work every `interval_s`, however a round ends.

Stopping lets a round in progress end (within `STOP_GRACE_S`) rather than cancelling it
mid-way: a round cut off inside a database call would leave the driver's thread finishing
it after its loop has gone.
"""

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Final

import structlog

STOP_GRACE_S: Final = 5.0


class Periodic:
    """Calls `work` every `interval_s` from `start` to `stop`, as the task `name`.

    A round that fails with one of `expected` (the infrastructure away for a while) is a
    warning, any other failure is logged with its traceback: either way the next round
    comes on time.
    """

    def __init__(
        self,
        name: str,
        interval_s: float,
        work: Callable[[], Awaitable[object]],
        *,
        expected: tuple[type[BaseException], ...],
        what: str,
        logger: str,
    ) -> None:
        self._name = name
        self.interval_s = interval_s
        self._work = work
        self._expected = expected
        self._what = what
        self._log = structlog.get_logger(logger)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        """Start the rounds (on the running loop)."""
        self._stopping.clear()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        """Stop the rounds: a round in progress may end first, within `STOP_GRACE_S`."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE_S)
        except TimeoutError:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
            if self._stopping.is_set():
                return
            try:
                await self._work()
            except self._expected as exc:
                self._log.warning(
                    f"{self._what} failed; next one later", error=f"{type(exc).__name__}: {exc}"
                )
            except Exception:
                self._log.exception(f"{self._what} raised")
