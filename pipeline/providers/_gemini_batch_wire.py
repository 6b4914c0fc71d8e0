"""promptbus requests as Gemini batch requests (inline, or lines of a file), and Gemini's
answers back as item outcomes."""

from dataclasses import dataclass, replace
from typing import Any, Final

import orjson
from google.genai import types

from pipeline.catalog import ModelSpec
from pipeline.errors import (
    ContentBlocked,
    EmptyAnswer,
    PromptBlocked,
    PromptbusError,
    UpstreamError,
    ValidationFailed,
)
from pipeline.providers._errors import from_status
from pipeline.providers.batch_outcomes import BatchItem, BridgeState, ItemAnswer, ItemOutcome
from schemas import ErrorDetail, GenerateRequest, Message, Role, Usage

# The inline request's metadata key that carries the caller's id back with the answer.
CUSTOM_ID: Final = "custom_id"
# Finish reasons that mean the model stopped for safety or policy, not on its own.
_BLOCKED: Final = frozenset(
    {"safety", "recitation", "blocklist", "prohibited_content", "spii", "image_safety"}
)
# The error type of an item a job ended without answering, as OpenAI's batch lines name it.
_UNANSWERED: Final = {
    BridgeState.FAILED: "batch_failed",
    BridgeState.CANCELLED: "batch_cancelled",
    BridgeState.EXPIRED: "batch_expired",
}


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One request in Gemini's terms."""

    contents: list[types.Content]
    # Without a role, so inline requests and file lines send the same JSON (the SDK gives
    # a plain-text system instruction the role "user").
    system: types.Content | None
    safety: list[types.SafetySetting] | None
    generation: dict[str, Any]


def _turn(message: Message, index: int) -> types.Content:
    if message.tool_calls or message.role is Role.TOOL:
        raise ValidationFailed(
            "tool calls and tool results are not supported in provider batches",
            field=f"messages[{index}]",
        )
    role = "model" if message.role is Role.ASSISTANT else "user"
    return types.Content(role=role, parts=[types.Part(text=message.content)])


def _prepared(request: GenerateRequest) -> _Prepared:
    if request.tools:
        raise ValidationFailed("tools are not supported in provider batches", field="tools")
    if not request.expanded:
        raise ValidationFailed("a template request must be expanded before it is batched")
    conversation = request.conversation()
    system = [m.content for m in conversation if m.role is Role.SYSTEM]
    params = request.params
    generation: dict[str, Any] = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,
        "max_output_tokens": params.max_output_tokens,
        "stop_sequences": list(params.stop) if params.stop else None,
        "seed": params.seed,
    }
    if request.response_schema is not None:
        # Gemini's JSON mode, as langchain-google-genai asks for it on the sync path.
        generation["response_mime_type"] = "application/json"
        generation["response_json_schema"] = request.response_schema
    safety = [
        types.SafetySetting(
            category=types.HarmCategory(s.category), threshold=types.HarmBlockThreshold(s.threshold)
        )
        for s in request.safety_settings or ()
    ]
    return _Prepared(
        contents=[_turn(m, i) for i, m in enumerate(conversation) if m.role is not Role.SYSTEM],
        system=types.Content(parts=[types.Part(text="\n\n".join(system))]) if system else None,
        safety=safety or None,
        generation={k: v for k, v in generation.items() if v is not None},
    )


def inlined_request(item: BatchItem) -> types.InlinedRequest:
    """One item as the SDK's inline request, its custom_id in the metadata."""
    prepared = _prepared(item.request)
    config = types.GenerateContentConfig(
        **prepared.generation,
        system_instruction=prepared.system,
        safety_settings=prepared.safety,
    )
    return types.InlinedRequest(
        contents=prepared.contents, metadata={CUSTOM_ID: item.custom_id}, config=config
    )


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json", by_alias=True, exclude_none=True)


def file_line(item: BatchItem) -> bytes:
    """One item as a line of a batch input file: `{"key", "request"}`, the REST request."""
    prepared = _prepared(item.request)
    request: dict[str, Any] = {"contents": [_dump(content) for content in prepared.contents]}
    if prepared.system is not None:
        request["systemInstruction"] = _dump(prepared.system)
    if prepared.safety:
        request["safetySettings"] = [_dump(setting) for setting in prepared.safety]
    if prepared.generation:
        request["generationConfig"] = _dump(types.GenerationConfig(**prepared.generation))
    return orjson.dumps({"key": item.custom_id, "request": request}) + b"\n"


def file_responses(data: bytes) -> list[types.InlinedResponse]:
    """The lines of a batch's responses file (`{"key", "response" | "error"}`) as inline
    responses, each key as its custom_id."""
    responses = []
    for line in data.splitlines():
        if not line.strip():
            continue
        entry = orjson.loads(line)
        if not isinstance(entry, dict):
            raise UpstreamError("a line of the batch's responses file is not an object")
        error, answer = entry.get("error"), entry.get("response")
        responses.append(
            types.InlinedResponse(
                metadata={CUSTOM_ID: str(entry.get("key"))},
                # The SDK's own parser drops fields newer than this SDK knows.
                response=types.GenerateContentResponse._from_response(response=answer, kwargs={})
                if isinstance(answer, dict)
                else None,
                error=types.JobError(code=error.get("code"), message=error.get("message"))
                if isinstance(error, dict)
                else None,
            )
        )
    return responses


def _usage(response: types.GenerateContentResponse) -> Usage:
    """Token counts of one answer (thinking tokens are output tokens, billed as such)."""
    meta = response.usage_metadata
    if meta is None:
        return Usage(input_tokens=0, output_tokens=0, total_tokens=0)
    prompt = meta.prompt_token_count or 0
    output = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    return Usage(
        input_tokens=prompt, output_tokens=output, total_tokens=meta.total_token_count or 0
    )


def _lower(value: Any) -> str:
    return str(getattr(value, "value", value)).lower()


def _answer(response: types.GenerateContentResponse) -> tuple[str, str]:
    """The text and lower-case finish reason of one answer; raises when there is none."""
    feedback = response.prompt_feedback
    if not response.candidates:
        if feedback is not None and feedback.block_reason is not None:
            reason = _lower(feedback.block_reason)
            raise PromptBlocked(f"the provider refused the prompt: {reason}", finish_reason=reason)
        raise EmptyAnswer("the provider answered with no candidates")
    candidate = response.candidates[0]
    finish = _lower(candidate.finish_reason) if candidate.finish_reason else "unknown"
    parts = candidate.content.parts if candidate.content else None
    text = "".join(part.text for part in parts or () if part.text and not part.thought)
    if not text and finish in _BLOCKED:
        raise ContentBlocked(f"the provider stopped the answer: {finish}", finish_reason=finish)
    if not text:
        raise EmptyAnswer("the provider answered with no text", finish_reason=finish)
    return text, finish


def outcome(
    spec: ModelSpec, item: BatchItem, response: types.InlinedResponse | None, state: BridgeState
) -> ItemOutcome:
    """One item's outcome from its response (None: the job, in `state`, never answered it)."""
    empty = ItemOutcome(item.custom_id, item.request, spec.provider_model)
    if response is None:
        kind = _UNANSWERED.get(state, "batch_failed")
        message = f"the Gemini batch ended {state} before answering this item"
        return replace(empty, error=ErrorDetail(type=kind, message=message, retryable=False))
    try:
        if response.error is not None:
            error = response.error
            raise from_status(error.code or 500, error.message or "the request failed")
        if response.response is None:
            raise UpstreamError("the batch answered this item with neither response nor error")
        text, finish = _answer(response.response)
    except PromptbusError as exc:
        return replace(empty, error=exc.detail(), status_code=exc.status)
    usage = _usage(response.response)
    return replace(empty, answer=ItemAnswer(text, finish, usage, spec.batch_cost(usage)))
