"""promptbus requests as Gemini inline batch requests, and Gemini's answers back again."""

from collections.abc import Sequence
from typing import Any, Final

from google.genai import types

from pipeline.errors import (
    ContentBlocked,
    EmptyAnswer,
    PromptBlocked,
    PromptbusError,
    ValidationFailed,
)
from pipeline.providers._errors import from_status
from schemas import GenerateRequest, Message, Role, Usage

# The inline request's metadata key that carries the caller's id back with the answer.
CUSTOM_ID: Final = "custom_id"
# Finish reasons that mean the model stopped for safety or policy, not on its own.
_BLOCKED: Final = frozenset(
    {"safety", "recitation", "blocklist", "prohibited_content", "spii", "image_safety"}
)


def _turn(message: Message, index: int) -> types.Content:
    if message.tool_calls or message.role is Role.TOOL:
        raise ValidationFailed(
            "tool calls and tool results are not supported in provider batches",
            field=f"messages[{index}]",
        )
    role = "model" if message.role is Role.ASSISTANT else "user"
    return types.Content(role=role, parts=[types.Part(text=message.content)])


def _config(request: GenerateRequest, system: Sequence[str]) -> types.GenerateContentConfig:
    params = request.params
    options: dict[str, Any] = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,
        "max_output_tokens": params.max_output_tokens,
        "stop_sequences": list(params.stop) if params.stop else None,
        "seed": params.seed,
        "system_instruction": "\n\n".join(system) if system else None,
    }
    if request.safety_settings:
        options["safety_settings"] = [
            types.SafetySetting(
                category=types.HarmCategory(s.category),
                threshold=types.HarmBlockThreshold(s.threshold),
            )
            for s in request.safety_settings
        ]
    if request.response_schema is not None:
        # Gemini's JSON mode, as langchain-google-genai asks for it on the sync path.
        options["response_mime_type"] = "application/json"
        options["response_json_schema"] = request.response_schema
    return types.GenerateContentConfig(**{k: v for k, v in options.items() if v is not None})


def inlined_request(custom_id: str, request: GenerateRequest) -> types.InlinedRequest:
    """One item as the SDK's inline request, its custom_id in the metadata."""
    if request.tools:
        raise ValidationFailed("tools are not supported in provider batches", field="tools")
    if not request.expanded:
        raise ValidationFailed("a template request must be expanded before it is batched")
    conversation = request.conversation()
    system = [m.content for m in conversation if m.role is Role.SYSTEM]
    contents = [_turn(m, i) for i, m in enumerate(conversation) if m.role is not Role.SYSTEM]
    return types.InlinedRequest(
        contents=contents, metadata={CUSTOM_ID: custom_id}, config=_config(request, system)
    )


def usage_of(response: types.GenerateContentResponse) -> Usage:
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


def answer_of(response: types.GenerateContentResponse) -> tuple[str, str]:
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


def error_of(error: types.JobError) -> PromptbusError:
    """The promptbus error for one request's failure, as its status code classifies it."""
    return from_status(error.code or 500, error.message or "the request failed")
