"""Spans as context managers that cost nothing when tracing is off.

Every helper takes the process's tracer, None when tracing is off, and then hands back one
shared do-nothing context (its span is OpenTelemetry's non-recording INVALID_SPAN, so code
that sets attributes on it needs no check of its own). A span that ends in an exception
says so the conventions' way: `error.type` (promptbus's error type for its own errors, the
exception's class otherwise) and an ERROR status.
"""

import asyncio
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Final

from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import Attributes

from pipeline.errors import PromptbusError
from pipeline.tracing import names
from schemas import StageEnvelope

_OFF: Final = nullcontext(INVALID_SPAN)
Passing = tuple[type[BaseException], ...]


def span(
    tracer: Tracer | None,
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes = None,
    parent: Context | None = None,
    passing: Passing = (),
) -> AbstractContextManager[Span]:
    """A current span named `name` (under `parent`, else the current span) while the block runs.

    Exceptions in `passing` are control flow, not failures: they leave the span's status be.
    """
    if tracer is None:
        return _OFF
    return _recorded(tracer, name, kind, attributes, parent, passing)


def stage_span(
    tracer: Tracer | None,
    stage: str,
    envelope: StageEnvelope | None = None,
    *,
    parent: Context | None = None,
    passing: Passing = (),
) -> AbstractContextManager[Span]:
    """The span of one stage (identify and lookup, generate, post-process, emit)."""
    if tracer is None:
        return _OFF
    attributes: dict[str, str] = {names.STAGE: stage}
    if envelope is not None:
        attributes[names.REQUEST_ID] = envelope.request_id
        attributes[names.TENANT] = envelope.tenant
        if envelope.job_id is not None:
            attributes[names.JOB_ID] = envelope.job_id
    return _recorded(
        tracer, f"{names.STAGE_SPAN} {stage}", SpanKind.INTERNAL, attributes, parent, passing
    )


def failed(current: Span, error_type: str, description: str | None = None) -> None:
    """Mark `current` as failed with `error_type`."""
    current.set_attribute(names.ERROR_TYPE, error_type)
    current.set_status(Status(StatusCode.ERROR, description))


@contextmanager
def _recorded(
    tracer: Tracer,
    name: str,
    kind: SpanKind,
    attributes: Attributes,
    parent: Context | None,
    passing: Passing,
) -> Iterator[Span]:
    with tracer.start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except passing:
            raise
        except PromptbusError as exc:
            failed(current, exc.type, exc.message)
            raise
        except Exception as exc:
            current.record_exception(exc)
            failed(current, type(exc).__qualname__, str(exc)[:200] or None)
            raise
        except asyncio.CancelledError:
            failed(current, "cancelled")
            raise
