"""The handler stages: plain async functions over `StageEnvelope`, one module each."""

from handlers.cache_lookup import cache_lookup
from handlers.context import StageContext
from handlers.dedupe import dedupe
from handlers.generate import BLOCKED_REASONS, generate
from handlers.postprocess import postprocess

__all__ = ["BLOCKED_REASONS", "StageContext", "cache_lookup", "dedupe", "generate", "postprocess"]
