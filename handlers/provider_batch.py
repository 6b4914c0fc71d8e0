"""A provider batch's outcomes as OpenAI batch output lines, with bodies of either endpoint.

A line is `{"id", "custom_id", "response": {"status_code", "request_id", "body"} | null,
"error": {"code", "message"} | null}`. An answered item's body is a GenerateResponse
(`/v1/generate`) or a `chat.completion` (`/v1/chat/completions`), rendered as those routes
render them; a failed item's body is that route's error body with its HTTP status; an item
the provider never answered (cancelled, expired) has no response and an `error` instead.
"""

import time
import uuid
from typing import Any, Final, Literal, get_args

from handlers.structured import InvalidAnswer, parse_answer
from pipeline.chat_completions import completion, openai_error_object, openai_status
from pipeline.errors import InvalidModelOutput, PromptbusError
from pipeline.providers.batch_outcomes import ItemAnswer, ItemOutcome
from schemas import CacheInfo, ErrorBody, ErrorDetail, GenerateResponse, RoutingInfo

Endpoint = Literal["/v1/chat/completions", "/v1/generate"]
ENDPOINTS: Final[tuple[str, ...]] = get_args(Endpoint)
PROVIDER: Final = "gemini"


def generate_response(
    outcome: ItemOutcome, answer: ItemAnswer, *, request_id: str, created: float | None = None
) -> GenerateResponse:
    """An answered item as the GenerateResponse `/v1/generate` would give (not cached).

    With a response schema the answer is parsed and checked as the sync path checks it
    (InvalidModelOutput when it does not match; a provider batch makes no repair call).
    """
    schema = outcome.request.response_schema
    try:
        parsed = parse_answer(answer.text, schema) if schema is not None else None
    except InvalidAnswer as exc:
        raise InvalidModelOutput(
            f"the model's answer does not match the response schema: {exc.reason}",
            finish_reason=answer.finish_reason,
        ) from exc
    return GenerateResponse(
        id=f"gen_{request_id}",
        model=outcome.request.model,
        provider=PROVIDER,
        provider_model=outcome.provider_model,
        text=answer.text,
        finish_reason=answer.finish_reason,
        usage=answer.usage,
        cost=answer.cost,
        # A provider batch neither looks in the cache nor stores in it.
        cache=CacheInfo(hit=False, key=""),
        routing=RoutingInfo(deployment=f"{PROVIDER}/{outcome.provider_model}", attempts=1),
        json_=parsed,
        created=time.time() if created is None else created,
    )


def _error_body(endpoint: Endpoint, status: int, detail: ErrorDetail) -> tuple[int, Any]:
    """The status and error body the endpoint's route answers a failure with."""
    if endpoint == "/v1/chat/completions":
        error = openai_error_object(status, detail.type, detail.message, detail.field)
        return openai_status(status), {"error": error}
    return status, ErrorBody(error=detail).model_dump(mode="json", exclude_none=True)


def _response(status: int, request_id: str, body: Any) -> dict[str, Any]:
    return {"status_code": status, "request_id": request_id, "body": body}


def output_line(
    outcome: ItemOutcome,
    endpoint: Endpoint,
    *,
    line_id: str | None = None,
    request_id: str | None = None,
    created: float | None = None,
) -> dict[str, Any]:
    """The output (or error) file line of one item."""
    line_id = line_id or f"batch_req_{uuid.uuid4().hex}"
    request_id = request_id or uuid.uuid4().hex
    line: dict[str, Any] = {"id": line_id, "custom_id": outcome.custom_id}
    status, detail = outcome.status_code, outcome.error
    if outcome.answer is not None:
        try:
            response = generate_response(
                outcome, outcome.answer, request_id=request_id, created=created
            )
        except PromptbusError as exc:
            status, detail = exc.status, exc.detail()
        else:
            dumped = response.model_dump(mode="json")
            body = completion(dumped) if endpoint == "/v1/chat/completions" else dumped
            return {**line, "response": _response(200, request_id, body), "error": None}
    if detail is None:
        raise ValueError(f"{outcome.custom_id}: an outcome holds an answer or an error")
    if status is None:
        return {**line, "response": None, "error": {"code": detail.type, "message": detail.message}}
    shown, body = _error_body(endpoint, status, detail)
    return {**line, "response": _response(shown, request_id, body), "error": None}


def is_error_line(line: dict[str, Any]) -> bool:
    """Whether a line belongs in the error file (a failed or unanswered item)."""
    response = line.get("response")
    return response is None or int(response["status_code"]) >= 400
