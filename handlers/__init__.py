"""The handler stages: plain async functions over `StageEnvelope`, one module each."""

from handlers.cache_lookup import cache_lookup
from handlers.context import StageContext
from handlers.dedupe import Identity, dedupe, identify
from handlers.emit import CompletionSink, completion_event, emit, failed_event, job_completion
from handlers.generate import generate
from handlers.postprocess import postprocess

__all__ = [
    "CompletionSink",
    "Identity",
    "StageContext",
    "cache_lookup",
    "completion_event",
    "dedupe",
    "emit",
    "failed_event",
    "generate",
    "identify",
    "job_completion",
    "postprocess",
]
