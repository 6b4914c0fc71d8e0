"""The one exception tree; each class knows its HTTP status and retryability."""

from typing import ClassVar

from schemas import ErrorBody, ErrorDetail


class PromptbusError(Exception):
    """Raised when promptbus cannot answer a request; the base of every error."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal_error"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        finish_reason: str | None = None,
        retry_after_s: float | None = None,
        attempts: int | None = None,
        tried: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.finish_reason = finish_reason
        # When the server (or a limit) said how long to wait before trying again.
        self.retry_after_s = retry_after_s
        # Set by routing when it gives up: upstream calls made and deployments tried.
        self.attempts = attempts
        self.tried = tried

    def detail(self) -> ErrorDetail:
        """The error as the wire's error detail."""
        return ErrorDetail(
            type=self.type,
            message=self.message,
            retryable=self.retryable,
            field=self.field,
            finish_reason=self.finish_reason,
            retry_after_s=None if self.retry_after_s is None else round(self.retry_after_s, 3),
            attempts=self.attempts,
            tried=self.tried,
        )

    def body(self) -> ErrorBody:
        """The error as the wire's `{"error": ...}` body."""
        return ErrorBody(error=self.detail())


class InvalidJson(PromptbusError):
    """Raised when a request body is not valid JSON."""

    status = 400
    type = "invalid_json"


class UnsupportedMediaType(PromptbusError):
    """Raised when a request body is not application/json."""

    status = 415
    type = "unsupported_media_type"


class PayloadTooLarge(PromptbusError):
    """Raised when a request body exceeds the configured byte limit."""

    status = 413
    type = "payload_too_large"


class ValidationFailed(PromptbusError):
    """Raised when a request does not match its schema."""

    status = 422
    type = "validation_error"


class Unauthenticated(PromptbusError):
    """Raised when a request needs an API key and came with none, or with one that is not valid."""

    status = 401
    type = "unauthenticated"


class PermissionDenied(PromptbusError):
    """Raised when a request's key is valid but may not do what it asks (a model, the admin API)."""

    status = 403
    type = "permission_denied"


class AuthThrottled(PromptbusError):
    """Raised when a client address sent too many bad API keys and must wait out a cool-down."""

    status = 429
    type = "too_many_failed_authentications"


class KeysUnavailable(PromptbusError):
    """Raised when a key must be looked up and the database that holds keys does not answer."""

    status = 503
    type = "keys_unavailable"
    retryable = True


class NotFound(PromptbusError):
    """Raised when a route or resource does not exist."""

    status = 404
    type = "not_found"


class MethodNotAllowed(PromptbusError):
    """Raised when a route exists but not for that HTTP method."""

    status = 405
    type = "method_not_allowed"


class UnknownModel(NotFound):
    """Raised when a request names a model that config/models.toml does not list."""

    type = "unknown_model"


class UnknownTemplate(NotFound):
    """Raised when a request names a template (or version) that config/templates/ lacks."""

    type = "unknown_template"


class InvalidConfig(PromptbusError):
    """Raised at start-up when a configuration file is invalid; the message names the file."""

    type = "invalid_config"


class RateLimited(PromptbusError):
    """Raised when a model's configured rate limit has no room within the caller's wait."""

    status = 429
    type = "rate_limited"
    retryable = True


class ContentBlocked(PromptbusError):
    """Raised when the provider refused to answer for safety or policy reasons."""

    status = 422
    type = "content_blocked"


class PromptBlocked(ContentBlocked):
    """Raised when the provider refused the prompt itself, so that no answer was generated."""


class UpstreamError(PromptbusError):
    """Raised when the provider failed to give a usable answer."""

    status = 502
    type = "upstream_error"
    retryable = True


class InvalidModelOutput(UpstreamError):
    """Raised when the model's answer does not match the requested schema, even repaired."""

    type = "invalid_model_output"
    retryable = False


class UpstreamRejected(UpstreamError):
    """Raised when the provider rejected the request itself (a 4xx it sent back)."""

    type = "upstream_rejected"
    retryable = False


class EmptyAnswer(UpstreamError):
    """Raised when the provider answered with no text."""

    type = "empty_answer"


class StreamInterrupted(UpstreamError):
    """Raised when a stream fails after part of its answer was sent.

    Routing cannot retry or fall back without repeating what the caller already has; the
    caller may ask again.
    """

    type = "stream_interrupted"


class UpstreamUnavailable(UpstreamError):
    """Raised when the provider is overloaded, rate limited or unreachable."""

    status = 503
    type = "upstream_unavailable"


class UpstreamRateLimited(UpstreamUnavailable):
    """Raised when the provider answered 429: its quota or rate limit is exhausted for now."""


class UpstreamTimeout(UpstreamError):
    """Raised when the provider did not answer in time."""

    status = 504
    type = "upstream_timeout"


class ServiceBusy(PromptbusError):
    """Raised when promptbus is at a bound (queue, store) and cannot take more now."""

    status = 503
    type = "service_busy"
    retryable = True


class BrokerUnavailable(PromptbusError):
    """Raised when the message broker did not take an event within the bound."""

    status = 503
    type = "broker_unavailable"
    retryable = True


class JobsUnavailable(PromptbusError):
    """Raised when async jobs need a store every process shares and none is configured."""

    status = 503
    type = "jobs_unavailable"


class Conflict(PromptbusError):
    """Raised when a request conflicts with an earlier one (e.g. a reused idempotency key)."""

    status = 409
    type = "conflict"


class JobCancelled(PromptbusError):
    """Raised when a job was cancelled before it finished (its error says so)."""

    status = 409
    type = "cancelled"


class JobStalled(PromptbusError):
    """Raised when a job made no progress through several re-drives and was given up."""

    status = 504
    type = "job_stalled"
    retryable = True


class JobNotFound(NotFound):
    """Raised when a job id is unknown or its job has expired."""

    type = "job_not_found"


class InvalidQuery(PromptbusError):
    """Raised when a query parameter (a date, a grouping, a format) is not one the route takes."""

    status = 400
    type = "invalid_query"


class DatabaseUnavailable(PromptbusError):
    """Raised when the database did not answer a read (the usage API) in time."""

    status = 503
    type = "database_unavailable"
    retryable = True


class BudgetExceeded(PromptbusError):
    """Raised when a tenant's or key's budget for the period is spent: wait for the next one."""

    status = 429
    type = "budget_exceeded"
    retryable = False


class UnknownChain(NotFound):
    """Raised when a request names a chain (or version) that config/chains/ lacks."""

    type = "unknown_chain"


class ChainStepFailed(PromptbusError):
    """Raised when a chain's step cannot use what an earlier step gave it (a field missing,
    a list that is not one); the message names the step."""

    status = 502
    type = "chain_step_failed"


class HeadersTooLarge(PromptbusError):
    """Raised when a request line or header is over its byte limit, or too many headers."""

    status = 431
    type = "headers_too_large"


class MalformedRequest(PromptbusError):
    """Raised when a request is not well-formed HTTP/1.1."""

    status = 400
    type = "malformed_request"
