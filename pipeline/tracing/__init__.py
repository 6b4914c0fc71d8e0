"""Traces (OpenTelemetry): the process's tracer, spans that cost nothing when off, propagation."""

from pipeline.tracing.genai import answered, provider_span
from pipeline.tracing.propagation import current_headers, current_trace, from_headers, from_trace
from pipeline.tracing.setup import Tracing
from pipeline.tracing.spans import failed, span, stage_span

__all__ = [
    "Tracing",
    "answered",
    "current_headers",
    "current_trace",
    "failed",
    "from_headers",
    "from_trace",
    "provider_span",
    "span",
    "stage_span",
]
