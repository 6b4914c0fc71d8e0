"""How a trace's context crosses process boundaries: W3C Trace Context, three ways.

HTTP requests and bus events carry it in their headers (`traceparent`, `tracestate`), the
standard carrier, so an upstream publisher's tracer needs nothing of promptbus's to take
part. Celery messages carry it in their payload instead (a `TraceContext` in the stage
envelope or the delivery task): Celery publishes a chain's next step itself, from inside
the worker, and copies no custom headers onto it, while the payload goes everywhere the
job goes (each step's result is the next step's argument, and retries carry it too).
"""

from collections.abc import Mapping
from typing import Any, Final

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from schemas.tracing import TraceContext

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
MAX_TRACESTATE: Final = 512
_W3C: Final = TraceContextTextMapPropagator()


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads string headers only: a broker may hand over other types, which are no context."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [str(key) for key in carrier]


_GETTER: Final = _HeaderGetter()


def from_headers(headers: Mapping[str, Any] | None) -> Context | None:
    """The context that HTTP or message headers carry; None when they carry none."""
    if not headers or headers.get(TRACEPARENT) is None:
        return None
    return _W3C.extract(headers, getter=_GETTER)


def current_headers() -> dict[str, str]:
    """The headers that carry the current span's context (none outside a sampled span)."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier


def current_trace() -> TraceContext | None:
    """The current span's context as a payload field; None outside a span."""
    carrier = current_headers()
    parent = carrier.get(TRACEPARENT)
    if parent is None:
        return None
    state = carrier.get(TRACESTATE) or None
    # A tracestate past the length W3C asks every vendor to keep is dropped, not refused.
    if state is not None and len(state) > MAX_TRACESTATE:
        state = None
    return TraceContext(traceparent=parent, tracestate=state)


def from_trace(trace: TraceContext | None) -> Context | None:
    """The context a payload's trace field carries; None when it has none."""
    if trace is None:
        return None
    carrier = {TRACEPARENT: trace.traceparent}
    if trace.tracestate:
        carrier[TRACESTATE] = trace.tracestate
    return _W3C.extract(carrier)
