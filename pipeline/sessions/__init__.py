"""Conversation memory: each session's turns kept server-side, per tenant, bounded."""

from pipeline.sessions.history import own_turn, summary_request, trimmed, turn_of, with_history
from pipeline.sessions.memory import MemorySessions
from pipeline.sessions.redis_store import RedisSessions
from pipeline.sessions.setup import build_sessions
from pipeline.sessions.store import SessionStore
from pipeline.sessions.window import ChainMemory, SessionWindow, recall

__all__ = [
    "ChainMemory",
    "MemorySessions",
    "RedisSessions",
    "SessionStore",
    "SessionWindow",
    "build_sessions",
    "own_turn",
    "recall",
    "summary_request",
    "trimmed",
    "turn_of",
    "with_history",
]
