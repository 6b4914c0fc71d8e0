"""The one error body every HTTP error and failed event carries."""

from pydantic import Field

from schemas._base import Envelope


class ErrorDetail(Envelope):
    """What went wrong, and whether trying again may help."""

    type: str = Field(description="Stable machine-readable error type")
    message: str
    retryable: bool
    finish_reason: str | None = Field(default=None, description="Set when the model stopped")
    field: str | None = Field(default=None, description="Set when one input field was invalid")


class ErrorBody(Envelope):
    """`{"error": {...}}`, the body of every error response."""

    error: ErrorDetail
