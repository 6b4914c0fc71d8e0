"""A task on the running loop that does its work every `interval_s`, however a round ends."""

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress

import structlog


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

    def start(self) -> None:
        """Start the rounds (on the running loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        """Stop the rounds (a round in progress is cancelled)."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self._work()
            except self._expected as exc:
                self._log.warning(
                    f"{self._what} failed; next one later", error=f"{type(exc).__name__}: {exc}"
                )
            except Exception:
                self._log.exception(f"{self._what} raised")
