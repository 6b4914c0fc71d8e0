"""A trace's place, carried inside promptbus's own messages (W3C Trace Context)."""

from pydantic import Field

from schemas._base import Envelope


class TraceContext(Envelope):
    """The W3C `traceparent` (and `tracestate`) of the span a message was sent under.

    Carried in the payload of promptbus's Celery messages (a job's stage envelope, a webhook
    delivery task), so that every step and delivery of a job joins the trace it began in.
    """

    traceparent: str = Field(
        pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        description="W3C traceparent: version-trace_id-parent_id-flags",
    )
    tracestate: str | None = Field(default=None, max_length=512, description="W3C tracestate")
