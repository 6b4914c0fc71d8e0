"""The handler stages: plain async functions over `StageEnvelope`, one module each."""

from handlers.arrival import arrive
from handlers.cache_lookup import cache_lookup
from handlers.context import StageContext
from handlers.emit import (
    CANCELLED,
    CompletionSink,
    deliver,
    emit,
    failed_event,
    finish,
    job_completion,
)
from handlers.generate import StageDeferred, generate
from handlers.identify import identified, identify
from handlers.job_stream import DeltaPump, generate_job
from handlers.postprocess import postprocess

__all__ = [
    "CANCELLED",
    "CompletionSink",
    "DeltaPump",
    "StageContext",
    "StageDeferred",
    "arrive",
    "cache_lookup",
    "deliver",
    "emit",
    "failed_event",
    "finish",
    "generate",
    "generate_job",
    "identified",
    "identify",
    "job_completion",
    "postprocess",
]
