"""Conversation memory: each session's turns kept server-side, per tenant, bounded."""

from pipeline.sessions.history import summary_request, trimmed, turn_of, with_history
from pipeline.sessions.memory import MemorySessions
from pipeline.sessions.redis_store import RedisSessions
from pipeline.sessions.setup import build_sessions
from pipeline.sessions.store import SessionStore

__all__ = [
    "MemorySessions",
    "RedisSessions",
    "SessionStore",
    "build_sessions",
    "summary_request",
    "trimmed",
    "turn_of",
    "with_history",
]
