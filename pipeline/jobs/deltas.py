"""The delta feed's interface: each streaming job's deltas, kept for readers in any process.

A worker that generates for a streaming job opens a run of the job's feed (a number, higher
than any run before it, so a re-run after a crash is told apart), appends each delta to it,
and ends the run with an end marker, answered or not. Readers (the ingress that holds a
job's SSE connection, whichever process it is) read from the start, then from where they
left off, waiting a bounded time for more. The feed is bounded: at most `max_deltas` entries
per job (the oldest are trimmed first) and kept about a job's retention after its last write.
A writer never waits for a reader.
"""

from dataclasses import dataclass
from typing import Final, Protocol

from schemas import CompletionDelta

# A reader's cursor before the first entry of a feed.
START: Final = "0"
# The longest one read waits for new entries.
MAX_WAIT_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class RunEnded:
    """The end marker of one run: its generation answered, or not (failed, deferred, cut)."""

    run: int
    answered: bool


FeedEntry = CompletionDelta | RunEnded


@dataclass(frozen=True, slots=True)
class FeedPage:
    """Entries after a cursor, oldest first, and the cursor to read on from."""

    entries: tuple[FeedEntry, ...]
    cursor: str


class DeltaFeed(Protocol):
    """Where streaming jobs' deltas live; in memory for one process, Redis for many."""

    async def open_run(self, job_id: str) -> int:
        """A new run of the job's generation: its number, 1 for the first."""
        ...

    async def append(self, delta: CompletionDelta) -> None:
        """Add one delta of a run to its job's feed."""
        ...

    async def end_run(self, job_id: str, run: int, *, answered: bool) -> None:
        """Mark the end of a run in the job's feed."""
        ...

    async def read(
        self, job_id: str, cursor: str = START, *, wait_s: float = 0.0, limit: int = 256
    ) -> FeedPage:
        """Up to `limit` entries after `cursor`, waiting up to `wait_s` (at most 5 s) for one."""
        ...

    async def close(self) -> None:
        """Release what the feed holds (connections)."""
        ...
