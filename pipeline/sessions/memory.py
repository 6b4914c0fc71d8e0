"""Sessions in this process: bounded in count (least recently used go) and in messages each."""

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from pipeline.errors import ServiceBusy
from schemas import Message


@dataclass
class _Session:
    messages: deque[Message]
    expires: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    summary: str | None = None


class MemorySessions:
    """Every session in a dict: `max_sessions` at most, `max_messages` kept in each."""

    def __init__(
        self,
        *,
        ttl_s: float,
        max_sessions: int,
        max_messages: int,
        lock_wait_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_sessions = max_sessions
        self._max_messages = max_messages
        self._lock_wait_s = lock_wait_s
        self._clock = clock
        self._sessions: OrderedDict[tuple[str, str], _Session] = OrderedDict()

    @asynccontextmanager
    async def turn(self, tenant: str, session_id: str) -> AsyncIterator[None]:
        """Hold the session for one turn (made, empty, if it does not exist yet)."""
        session = self._live(tenant, session_id)
        if session is None:
            session = _Session(deque(maxlen=self._max_messages), self._clock() + self._ttl_s)
            self._put((tenant, session_id), session)
        try:
            async with asyncio.timeout(self._lock_wait_s):
                await session.lock.acquire()
        except TimeoutError:
            raise ServiceBusy(
                f"session {session_id!r} is busy with another turn; try again",
                retry_after_s=1.0,
            ) from None
        try:
            yield
        finally:
            session.lock.release()

    async def history(self, tenant: str, session_id: str) -> list[Message]:
        """The session's kept messages, oldest first."""
        session = self._live(tenant, session_id)
        return [] if session is None else list(session.messages)

    async def append(self, tenant: str, session_id: str, messages: Sequence[Message]) -> None:
        """Add one turn's messages; the session lives for its TTL from now."""
        key = (tenant, session_id)
        session = self._live(tenant, session_id)
        if session is None:
            session = _Session(deque(maxlen=self._max_messages), 0.0)
            self._put(key, session)
        session.messages.extend(messages)
        session.expires = self._clock() + self._ttl_s
        self._sessions.move_to_end(key)

    async def summary(self, tenant: str, session_id: str) -> str | None:
        """The running summary of the session's older turns, if any."""
        session = self._live(tenant, session_id)
        return None if session is None else session.summary

    async def fold(self, tenant: str, session_id: str, dropped: int, summary: str) -> None:
        """Drop the `dropped` oldest messages; `summary` tells them now."""
        session = self._live(tenant, session_id)
        if session is None:
            return
        for _ in range(min(dropped, len(session.messages))):
            session.messages.popleft()
        session.summary = summary

    async def ttl_s(self, tenant: str, session_id: str) -> float | None:
        """Seconds until the session expires; None when there is none (or it is empty)."""
        session = self._live(tenant, session_id)
        if session is None or not (session.messages or session.summary):
            return None
        return max(0.0, session.expires - self._clock())

    async def delete(self, tenant: str, session_id: str) -> bool:
        """Forget the session; whether it held any turn."""
        session = self._sessions.pop((tenant, session_id), None)
        return session is not None and bool(session.messages)

    def _live(self, tenant: str, session_id: str) -> _Session | None:
        key = (tenant, session_id)
        session = self._sessions.get(key)
        if session is not None and session.expires <= self._clock() and not session.lock.locked():
            del self._sessions[key]
            return None
        return session

    def _put(self, key: tuple[str, str], session: _Session) -> None:
        self._sessions[key] = session
        while len(self._sessions) > self._max_sessions:
            # The least recently used goes; a session with a turn in progress stays.
            idle = (k for k, held in self._sessions.items() if not held.lock.locked())
            victim = next(idle, None)
            if victim is None:
                break
            del self._sessions[victim]
