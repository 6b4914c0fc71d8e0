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
    retry_after_s: float | None = Field(
        default=None, ge=0, description="Set when a retry cannot succeed before this many s"
    )
    attempts: int | None = Field(default=None, ge=0, description="Upstream calls made, in all")
    tried: tuple[str, ...] | None = Field(
        default=None, description="Deployments tried, in order, when routing gave up"
    )


class ErrorBody(Envelope):
    """`{"error": {...}}`, the body of every error response."""

    error: ErrorDetail
