"""What a turn made outside a sync request (a job, a chain) reads of its session: the kept
turns and summary, read under the session's lock, and the bounds they are sent within."""

from dataclasses import dataclass

from pipeline.errors import ServiceBusy
from pipeline.sessions.history import with_history
from pipeline.sessions.store import SessionStore
from pipeline.settings import Settings
from schemas import GenerateRequest, Message


@dataclass(frozen=True, slots=True)
class SessionWindow:
    """How much of a session is sent: turns, tokens, and whether its summary is."""

    max_turns: int
    max_tokens: int
    summarised: bool

    @classmethod
    def of(cls, settings: Settings) -> "SessionWindow":
        """The window `settings` configure."""
        return cls(
            max_turns=settings.session_max_turns,
            max_tokens=settings.session_max_tokens,
            summarised=settings.session_memory == "summary",
        )


async def recall(
    store: SessionStore | None, tenant: str, session_id: str, window: SessionWindow
) -> tuple[list[Message], str | None]:
    """The session's kept messages and (memory "summary") its summary, read as one."""
    if store is None:
        raise ServiceBusy("this process keeps no sessions")
    async with store.turn(tenant, session_id):
        history = await store.history(tenant, session_id)
        summary = await store.summary(tenant, session_id) if window.summarised else None
    return history, summary


@dataclass(frozen=True, slots=True)
class ChainMemory:
    """A session's history as a chain's model calls get it: the calls of `step` only (its
    first llm step; None: every call of a custom chain, whose steps are its own)."""

    history: tuple[Message, ...]
    summary: str | None
    step: str | None
    window: SessionWindow

    def applied(self, request: GenerateRequest, step: str | None) -> GenerateRequest:
        """`request` (made by `step`) as sent: after the history if it is that step's."""
        if step != self.step:
            return request
        return with_history(
            request,
            self.history,
            max_turns=self.window.max_turns,
            max_tokens=self.window.max_tokens,
            summary=self.summary,
        )
