"""Spans as tests read them: from an in-process exporter, or from a real OTLP/HTTP receiver.

`OtlpReceiver` is a fake collector that speaks the real protocol: an aiohttp server on
127.0.0.1 (port 0) that decodes each `ExportTraceServiceRequest` protobuf POSTed to
/v1/traces, as promptbus processes send them. Both sources give `Recorded` spans, so the
assertions read the same whichever a test uses.
"""

import asyncio
import gzip
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as ProtoStatus
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline.tracing import Tracing
from tests.support.served import served

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
_PROTO_KINDS = {
    ProtoSpan.SPAN_KIND_INTERNAL: "INTERNAL",
    ProtoSpan.SPAN_KIND_SERVER: "SERVER",
    ProtoSpan.SPAN_KIND_CLIENT: "CLIENT",
    ProtoSpan.SPAN_KIND_PRODUCER: "PRODUCER",
    ProtoSpan.SPAN_KIND_CONSUMER: "CONSUMER",
}
_PROTO_STATUS = {
    ProtoStatus.STATUS_CODE_UNSET: "UNSET",
    ProtoStatus.STATUS_CODE_OK: "OK",
    ProtoStatus.STATUS_CODE_ERROR: "ERROR",
}


@dataclass(frozen=True)
class Recorded:
    """One finished span: its place in its trace, what it says, and who recorded it."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]
    status: str
    resource: dict[str, Any]


def from_sdk(span: ReadableSpan) -> Recorded:
    """An in-process span as a `Recorded` one."""
    context = span.context
    assert context is not None
    parent = span.parent
    return Recorded(
        name=span.name,
        kind=span.kind.name,
        trace_id=f"{context.trace_id:032x}",
        span_id=f"{context.span_id:016x}",
        parent_id=f"{parent.span_id:016x}" if parent is not None else None,
        attributes=dict(span.attributes or {}),
        status=span.status.status_code.name,
        resource=dict(span.resource.attributes),
    )


class MemorySpans:
    """The spans an in-process gateway handed its in-memory exporter."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracing: list[Tracing] = []

    def spans(self) -> list[Recorded]:
        for tracing in self.tracing:
            tracing.flush()
        return [from_sdk(span) for span in self.exporter.get_finished_spans()]


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, which) if which else None


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


class OtlpReceiver:
    """A fake OTLP/HTTP collector: keeps every span POSTed to /v1/traces."""

    def __init__(self) -> None:
        self.received: list[Recorded] = []
        self.requests = 0
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        assert request.content_type == "application/x-protobuf", request.content_type
        export = ExportTraceServiceRequest.FromString(body)
        self.requests += 1
        for resource_spans in export.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.received.append(
                        Recorded(
                            name=span.name,
                            kind=_PROTO_KINDS[span.kind],
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex() or None,
                            attributes=_attributes(span.attributes),
                            status=_PROTO_STATUS[span.status.code],
                            resource=resource,
                        )
                    )
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    def spans(self) -> list[Recorded]:
        return list(self.received)


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[OtlpReceiver]:
    """A fake collector on 127.0.0.1; its `url` is the OTLP endpoint (without /v1/traces)."""
    receiver = OtlpReceiver()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", receiver.handle)
    async with served(app) as url:
        receiver.url = url
        yield receiver


SpanSource = Callable[[], Sequence[Recorded]]


async def wait_for_spans(
    source: SpanSource, done: Callable[[Sequence[Recorded]], bool], *, timeout_s: float, what: str
) -> list[Recorded]:
    """Read `source` until `done(spans)`, with a deadline (spans end after answers are sent)."""
    deadline = time.monotonic() + timeout_s
    while True:
        spans = list(source())
        if done(spans):
            return spans
        if time.monotonic() > deadline:
            names = sorted(f"{s.name} ({s.trace_id[:8]})" for s in spans)
            raise AssertionError(f"{what} not recorded in {timeout_s:g}s; spans: {names}")
        await asyncio.sleep(0.05)


def named(spans: Iterable[Recorded], name: str) -> list[Recorded]:
    """The spans called `name`."""
    return [s for s in spans if s.name == name]


def one(spans: Iterable[Recorded], name: str) -> Recorded:
    """The one span called `name`."""
    found = named(spans, name)
    assert len(found) == 1, f"{len(found)} spans named {name!r}: {found}"
    return found[0]


def in_trace(spans: Iterable[Recorded], trace_id: str) -> list[Recorded]:
    """The spans of one trace."""
    return [s for s in spans if s.trace_id == trace_id]


def has_names(*wanted: str) -> Callable[[Sequence[Recorded]], bool]:
    """Done once a span of each name in `wanted` is there."""
    return lambda spans: set(wanted) <= {s.name for s in spans}
