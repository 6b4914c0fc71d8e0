"""A process's tracer: an SDK provider exporting in batches over OTLP/HTTP, or none (off).

Off (the default unless an OTLP endpoint or PROMPTBUS_TRACING says otherwise), nothing of
the SDK is built: no provider, no exporter thread, and code that would record a span finds
no tracer and skips it, so the cache-hit path pays nothing. On, spans queue in memory (the
BatchSpanProcessor's bounded queue: past it they are dropped, never waited for) and go out
in batches from one thread; the standard OTEL_* variables (endpoint, headers, timeout,
OTEL_BSP_*, OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER) apply.
"""

from importlib.metadata import version

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Tracer

from pipeline.settings import Settings
from pipeline.tracing import names

# Export waits at most this long when the process stops (it holds the stop up otherwise).
_FLUSH_MS = 5_000


class Tracing:
    """This process's tracer provider, or nothing when tracing is off."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self._provider = provider
        self.tracer: Tracer | None = None if provider is None else provider.get_tracer("promptbus")

    @classmethod
    def start(
        cls, settings: Settings, role: str, exporter: SpanExporter | None = None
    ) -> "Tracing":
        """Tracing as the settings say (an `exporter` given, as tests do, turns it on)."""
        if exporter is None and not settings.tracing_on:
            return cls(None)
        # Left to Services.stop: an atexit hook would keep every provider a process ever made.
        provider = TracerProvider(resource=resource(role), shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(exporter or OTLPSpanExporter()))
        return cls(provider)

    @property
    def on(self) -> bool:
        """Whether spans are recorded."""
        return self._provider is not None

    def flush(self, timeout_ms: int = _FLUSH_MS) -> bool:
        """Export every span ended so far; whether that finished in time."""
        return self._provider is None or self._provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        """Export what is queued (bounded in time) and stop the exporter thread."""
        if self._provider is not None:
            self._provider.force_flush(_FLUSH_MS)
            self._provider.shutdown()


def resource(role: str) -> Resource:
    """Who records the spans: promptbus (unless OTEL_SERVICE_NAME says otherwise), its role."""
    detected = Resource.create({names.PROCESS_ROLE: role, SERVICE_VERSION: version("promptbus")})
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        detected = detected.merge(Resource({SERVICE_NAME: names.SERVICE_NAME}))
    return detected
