"""Where conversations are kept: the turns of each session, per tenant, behind a lock.

A session's turns are its user and assistant messages, oldest first (a request's system
message is its own, sent each time, never kept). A turn is read, answered and appended
while the session's lock is held, so that two turns of one session never interleave:
each sees the one before it, and no append is lost.
"""

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from schemas import Message


class SessionStore(Protocol):
    """The turns of sessions, each session its tenant's alone."""

    def turn(self, tenant: str, session_id: str) -> AbstractAsyncContextManager[None]:
        """Hold the session for one turn; ServiceBusy if another turn holds it too long."""
        ...

    async def history(self, tenant: str, session_id: str) -> list[Message]:
        """The session's kept messages, oldest first (none: an unknown or expired session)."""
        ...

    async def append(self, tenant: str, session_id: str, messages: Sequence[Message]) -> None:
        """Add one turn's messages; the session lives for its TTL from now."""
        ...

    async def summary(self, tenant: str, session_id: str) -> str | None:
        """The running summary of the session's older turns (memory "summary"), if any."""
        ...

    async def fold(self, tenant: str, session_id: str, dropped: int, summary: str) -> None:
        """Drop the session's `dropped` oldest messages, now told by `summary` instead."""
        ...

    async def ttl_s(self, tenant: str, session_id: str) -> float | None:
        """Seconds until the session expires; None when there is no such session."""
        ...

    async def delete(self, tenant: str, session_id: str) -> bool:
        """Forget the session; whether there was one."""
        ...
