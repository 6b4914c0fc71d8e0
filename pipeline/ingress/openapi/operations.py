"""Every route the ingress serves, as the OpenAPI document shows it: one entry a route.

A new route adds its `Operation` here (tests/e2e/test_openapi.py fails until it does).
Bodies are the envelopes in `schemas/`; a compatible API's foreign bodies are raw JSON
Schemas (which may hold models), e.g. `compat/openai/shapes.py`.
"""

from typing import Final

from pipeline.ingress.compat.gemini import shapes as gemini
from pipeline.ingress.compat.gemini.wire import CountTokensRequest, GenerateContentRequest
from pipeline.ingress.compat.openai import shapes as openai
from pipeline.ingress.compat.openai.requests import ChatCompletionRequest
from pipeline.ingress.dashboard.overview import OVERVIEW
from pipeline.ingress.openapi.admin_operations import ADMIN_OPERATIONS
from pipeline.ingress.openapi.batch_operations import BATCH_OPERATIONS
from pipeline.ingress.openapi.chain_operations import CHAIN_OPERATIONS
from pipeline.ingress.openapi.document import Operation, Param, Reply, Stream
from pipeline.ingress.usage import USAGE_REPORT
from schemas import ErrorBody, GenerateRequest, GenerateResponse, JobState
from schemas.health import Health, Readiness
from schemas.jobs import ChainJobSubmission, Job, JobPage, JobSubmission, JobView
from schemas.templates import TemplateList
from schemas.webhooks import (
    AttemptList,
    Endpoint,
    EndpointCreate,
    EndpointCreated,
    EndpointList,
    JobWebhookSecret,
    ReplayQueued,
    SecretRotated,
)

# What reading a JSON body can fail with: malformed, too large, not JSON typed, invalid.
BODY_ERRORS: Final = (400, 413, 415, 422)
# What answering a request can fail with, besides its body.
# 401: a key is required and missing or bad; 403: the key may not use the model.
ANSWER_ERRORS: Final = (401, 403, 404, 429, 502, 503, 504)

CACHE_CONTROL: Final = Param(
    "Cache-Control", "header", {"type": "string"}, "no-cache, no-store or max-age=S tighten `cache`"
)
GENERATE_STREAM: Final = Stream(
    "With `stream: true`: `delta` events, then `done` (the whole answer) or `error`",
    {
        "delta": {"type": "object", "properties": {"text": {"type": "string"}}},
        "done": GenerateResponse,
        "error": ErrorBody,
    },
)
JOB_STREAM: Final = Stream(
    "An event named for each state the job reaches, ending after the final one; "
    "`: ping` comments keep the connection open",
    {state.value: Job for state in JobState},
)
CHAT_STREAM: Final = Stream(
    "With `stream: true`: `chat.completion.chunk`s (or an error object), then `data: [DONE]`",
    {"message": {"anyOf": [openai.CHAT_CHUNK, openai.ERROR]}},
)
GEMINI_STREAM: Final = Stream(
    "With `alt=sse`: GenerateContentResponse chunks (the last with finishReason and usage), "
    "or an error object, ending at EOF (no [DONE])",
    {"message": {"anyOf": [gemini.GENERATE_CONTENT_RESPONSE, gemini.ERROR]}},
)
GEMINI_ERRORS: Final = (400, 404, 429, 502, 503, 504)


def gemini_operations(version: str) -> tuple[Operation, ...]:
    """The Gemini API's methods of one model, on `version` (v1 or v1beta)."""
    path = f"/{version}/models/{{model:.+}}"
    return (
        Operation(
            "POST",
            path + ":generateContent",
            f"Gemini-compatible generateContent ({version})",
            body=GenerateContentRequest,
            params=(CACHE_CONTROL,),
            replies=(Reply(200, "The answer, or a block", gemini.GENERATE_CONTENT_RESPONSE),),
            errors=GEMINI_ERRORS,
            error_body=gemini.ERROR,
        ),
        Operation(
            "POST",
            path + ":streamGenerateContent",
            f"Gemini-compatible streamGenerateContent ({version})",
            body=GenerateContentRequest,
            params=(
                CACHE_CONTROL,
                Param("alt", "query", {"enum": ["sse", "json"]}, "sse: events; else a JSON array"),
            ),
            replies=(Reply(200, "The answer's chunks", gemini.CHUNKS, GEMINI_STREAM),),
            errors=GEMINI_ERRORS,
            error_body=gemini.ERROR,
        ),
        Operation(
            "POST",
            path + ":countTokens",
            f"Gemini-compatible countTokens ({version}): the provider's count, else an estimate",
            body=CountTokensRequest,
            replies=(Reply(200, "The count", gemini.COUNT_TOKENS_RESPONSE),),
            errors=(400, 404, 502, 503, 504),
            error_body=gemini.ERROR,
        ),
    )


OPERATIONS: Final = (
    Operation(
        "POST",
        "/v1/generate",
        "Answer one request now, from the cache when possible",
        body=GenerateRequest,
        params=(CACHE_CONTROL,),
        replies=(Reply(200, "The answer", GenerateResponse, GENERATE_STREAM),),
        errors=(*BODY_ERRORS, *ANSWER_ERRORS),
    ),
    Operation(
        "POST",
        "/v1/jobs",
        "Accept a job (a generate request, or a chain with `chain`); its record, with Location",
        body={"oneOf": [JobSubmission, ChainJobSubmission]},
        params=(
            Param(
                "Idempotency-Key", "header", {"type": "string", "minLength": 1, "maxLength": 255}
            ),
            Param("X-Correlation-Id", "header", {"type": "string"}),
        ),
        replies=(Reply(202, "Accepted: on the bus", Job),),
        errors=(*BODY_ERRORS, 403, 404, 409, 503),
    ),
    Operation(
        "GET",
        "/v1/jobs",
        "Recent jobs, newest first",
        params=(
            Param("state", "query", {"enum": [state.value for state in JobState]}),
            Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100}),
            Param("cursor", "query", {"type": "string"}, "`next_cursor` of the page before"),
        ),
        replies=(Reply(200, "A page of jobs", JobPage),),
        errors=(422,),
    ),
    Operation(
        "GET",
        "/v1/jobs/{job_id}",
        "A job's state, and its result or error once finished",
        params=(
            Param(
                "wait",
                "query",
                {"type": "number", "minimum": 0, "maximum": 60},
                "Hold the request until the job finishes, or this many seconds pass",
            ),
        ),
        replies=(Reply(200, "The job", JobView),),
        errors=(404, 422),
    ),
    Operation(
        "DELETE",
        "/v1/jobs/{job_id}",
        "Cancel a queued or running job",
        replies=(Reply(200, "The cancelled job", Job),),
        errors=(404, 409),
    ),
    Operation(
        "GET",
        "/v1/jobs/{job_id}/events",
        "A job's state changes as Server-Sent Events",
        replies=(Reply(200, "The job's events", stream=JOB_STREAM),),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/v1/webhooks",
        "Register a webhook endpoint; its secret is shown this once",
        body=EndpointCreate,
        replies=(Reply(201, "Registered, with Location", EndpointCreated),),
        errors=BODY_ERRORS,
    ),
    Operation(
        "GET",
        "/v1/webhooks",
        "The webhook endpoints, without secrets",
        replies=(Reply(200, "The endpoints", EndpointList),),
    ),
    Operation(
        "GET",
        "/v1/webhooks/{endpoint_id}",
        "One webhook endpoint, without its secret",
        replies=(Reply(200, "The endpoint", Endpoint),),
        errors=(404,),
    ),
    Operation(
        "DELETE",
        "/v1/webhooks/{endpoint_id}",
        "Remove a webhook endpoint; deliveries to it stop",
        replies=(Reply(204, "Removed"),),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/v1/webhooks/{endpoint_id}/rotate-secret",
        "A new secret; the old one keeps signing alongside for 24 hours",
        replies=(Reply(200, "The new secret", SecretRotated),),
        errors=(404,),
    ),
    Operation(
        "GET",
        "/v1/webhooks/{endpoint_id}/attempts",
        "The endpoint's recent delivery attempts, oldest first",
        replies=(Reply(200, "The attempts", AttemptList),),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/v1/webhooks/{endpoint_id}/replay/{job_id}",
        "Deliver a finished job's completion to the endpoint again",
        replies=(Reply(202, "Queued for delivery", ReplayQueued),),
        errors=(404, 409),
    ),
    Operation(
        "GET",
        "/v1/webhook-secret",
        "The secret the caller's tenant's per-job webhooks are signed with (one per tenant)",
        replies=(Reply(200, "The tenant and its secret", JobWebhookSecret),),
        errors=(401,),
    ),
    Operation(
        "GET",
        "/v1/templates",
        "Every version of every prompt template",
        replies=(Reply(200, "The templates", TemplateList),),
    ),
    Operation(
        "GET",
        "/v1/templates/{template_id}",
        "One prompt template's versions",
        replies=(Reply(200, "The template's versions", TemplateList),),
        errors=(404,),
    ),
    Operation(
        "POST",
        "/v1/chat/completions",
        "OpenAI-compatible Chat Completions, streaming included",
        body=ChatCompletionRequest,
        params=(CACHE_CONTROL,),
        replies=(Reply(200, "The chat.completion", openai.CHAT_COMPLETION, CHAT_STREAM),),
        errors=(400, 404, 413, 415, 429, 502, 503, 504),
        error_body=openai.ERROR,
    ),
    Operation(
        "GET",
        "/v1/models",
        "Every model a request may name, and the routes over them (OpenAI's list)",
        replies=(Reply(200, "The models", openai.MODEL_LIST),),
        error_body=openai.ERROR,
    ),
    Operation(
        "GET",
        "/v1/models/{model_id}",
        "One model by provider model, alias or route name (OpenAI's model)",
        replies=(Reply(200, "The model", openai.MODEL),),
        errors=(404,),
        error_body=openai.ERROR,
    ),
    *gemini_operations("v1"),
    *gemini_operations("v1beta"),
    Operation(
        "GET",
        "/v1beta/models",
        "Every model a request may name, as Gemini's model list",
        params=(
            Param("pageSize", "query", {"type": "integer", "minimum": 0, "maximum": 1000}),
            Param("pageToken", "query", {"type": "string"}, "`nextPageToken` of the page before"),
        ),
        replies=(Reply(200, "A page of models", gemini.MODEL_LIST),),
        errors=(400,),
        error_body=gemini.ERROR,
    ),
    Operation(
        "GET",
        "/v1beta/models/{model:.+}",
        "One model by provider model, alias or route name (Gemini's Model)",
        replies=(Reply(200, "The model", gemini.MODEL),),
        errors=(404,),
        error_body=gemini.ERROR,
    ),
    Operation(
        "GET",
        "/v1/usage",
        "Usage from the ledger over [from, to): totals and grouped series (the caller's "
        "tenant; the admin's: every tenant, or `tenant`)",
        params=(
            Param("from", "query", {"type": "string"}, "ISO-8601 date or date-time, UTC"),
            Param("to", "query", {"type": "string"}, "ISO-8601; default now, range 30 days"),
            Param(
                "group_by",
                "query",
                {"type": "string"},
                "Comma-separated subset of day, model, tenant, key, template (default day)",
            ),
            Param("tenant", "query", {"type": "string"}, "The admin only: one tenant's usage"),
            Param(
                "format",
                "query",
                {"enum": ["json", "csv"]},
                "csv (or `Accept: text/csv`): the series as text/csv",
            ),
        ),
        replies=(Reply(200, "Totals and series (JSON, or text/csv)", USAGE_REPORT),),
        errors=(400, 403, 503),
    ),
    Operation(
        "GET",
        "/dashboard",
        "The operator's dashboard (HTML): charts and tables of /v1/usage and the overview",
        replies=(Reply(200, "The page"),),
    ),
    Operation(
        "GET",
        "/dashboard/static/{name}",
        "The dashboard's script, styles and the vendored uPlot library",
        replies=(Reply(200, "The file"),),
        errors=(404,),
    ),
    Operation(
        "GET",
        "/dashboard/api/overview",
        "Latency percentiles, errors by type, live jobs and webhook health over [from, to) "
        "(the admin key's once API keys are required)",
        params=(
            Param("from", "query", {"type": "string"}, "ISO-8601 date or date-time, UTC"),
            Param("to", "query", {"type": "string"}, "ISO-8601; default now, range 30 days"),
            Param("tenant", "query", {"type": "string"}, "The admin only: one tenant's"),
        ),
        replies=(Reply(200, "The overview", OVERVIEW),),
        errors=(400, 401, 403, 503),
    ),
    *ADMIN_OPERATIONS,
    *CHAIN_OPERATIONS,
    *BATCH_OPERATIONS,
    Operation("GET", "/healthz", "Liveness", replies=(Reply(200, "Up", Health),)),
    Operation(
        "GET",
        "/readyz",
        "Readiness: the provider answers and the cache works",
        replies=(Reply(200, "Ready", Readiness), Reply(503, "Not ready", Readiness)),
    ),
    Operation(
        "GET",
        "/metrics",
        "Prometheus metrics (text exposition; OpenMetrics by Accept): the admin key's once "
        "API keys are required; 404 when metrics are off",
        replies=(Reply(200, "The metrics of this process, or of every process of the run"),),
        errors=(401, 403, 404),
    ),
    Operation(
        "GET",
        "/openapi.json",
        "This document",
        replies=(Reply(200, "The OpenAPI 3.1 document", {"type": "object"}),),
    ),
)
