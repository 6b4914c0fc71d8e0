"""Envelopes for every request, response and event: the bus and HTTP contract."""

from schemas.errors import ErrorBody, ErrorDetail
from schemas.events import (
    COMPLETION_SCHEMA,
    DEFAULT_TENANT,
    REQUEST_SCHEMA,
    CompletionEvent,
    JobState,
    RequestEvent,
    WebhookTarget,
)
from schemas.generate import (
    CacheControl,
    CacheInfo,
    Cost,
    GenerateRequest,
    GenerateResponse,
    GenerationParams,
    Message,
    Role,
    RoutingInfo,
    SafetySetting,
    TemplateRef,
    Usage,
)
from schemas.stages import Generation, RoutingState, StageEnvelope

__all__ = [
    "COMPLETION_SCHEMA",
    "DEFAULT_TENANT",
    "REQUEST_SCHEMA",
    "CacheControl",
    "CacheInfo",
    "CompletionEvent",
    "Cost",
    "ErrorBody",
    "ErrorDetail",
    "GenerateRequest",
    "GenerateResponse",
    "Generation",
    "GenerationParams",
    "JobState",
    "Message",
    "RequestEvent",
    "Role",
    "RoutingInfo",
    "RoutingState",
    "SafetySetting",
    "StageEnvelope",
    "TemplateRef",
    "Usage",
    "WebhookTarget",
]
