"""promptbus answers as Gemini's GenerateContentResponse, blocked ones included.

Gemini does not fail a request whose prompt or answer its safety filters stopped: it
answers 200, with `promptFeedback.blockReason` and no candidates for a refused prompt, or
a candidate with `finishReason: SAFETY` (or the like) and no content for a withheld answer.
"""

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson
from google.genai.types import BlockedReason, FinishReason

from pipeline.errors import ContentBlocked, PromptBlocked
from pipeline.ingress.compat.gemini.tools import function_call_parts

# promptbus's finish reasons that are not Gemini's own names, lower-cased.
_FINISH: Final = {
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "tool_calls": "STOP",
    "end_turn": "STOP",
    "stop_sequence": "STOP",
    "unknown": "FINISH_REASON_UNSPECIFIED",
}
# What the extension key carries: where the answer came from and what it cost.
_EXTENSION: Final = ("provider", "provider_model", "cost", "cache", "routing")


def finish_reason(reason: str | None) -> str:
    """promptbus's lower-case finish reason as Gemini's FinishReason name."""
    name = (reason or "unknown").upper()
    if name in FinishReason.__members__:
        return name
    return _FINISH.get(name.lower(), "OTHER")


def block_reason(reason: str | None) -> str:
    """Why a prompt was refused, as Gemini's BlockedReason name."""
    name = (reason or "").upper()
    if name in BlockedReason.__members__:
        return name
    return "SAFETY" if name == "CONTENT_FILTER" else "OTHER"


def usage_metadata(response: Mapping[str, Any]) -> dict[str, int]:
    """Gemini's usageMetadata for the answer."""
    used = response["usage"]
    return {
        "promptTokenCount": used["input_tokens"],
        "candidatesTokenCount": used["output_tokens"],
        "totalTokenCount": used["total_tokens"],
    }


def extension(response: Mapping[str, Any]) -> dict[str, Any]:
    """promptbus's own account of the answer, under the `promptbus` key (SDKs skip it)."""
    return {name: response.get(name) for name in _EXTENSION}


def candidate(
    text: str, reason: str | None = None, calls: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Candidate 0 holding `text` and any tool `calls` (as functionCall parts), with its
    finish reason once the answer is complete."""
    parts = [{"text": text}] if text or not calls else []
    parts.extend(function_call_parts(calls))
    out: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if reason is not None:
        out["finishReason"] = reason
    out["index"] = 0
    return out


def answer_object(response: Mapping[str, Any]) -> dict[str, Any]:
    """A whole answer (GenerateResponse, parsed) as a GenerateContentResponse."""
    return {
        "candidates": [
            candidate(
                response["text"],
                finish_reason(response["finish_reason"]),
                response.get("tool_calls") or (),
            )
        ],
        "usageMetadata": usage_metadata(response),
        "modelVersion": response["provider_model"],
        "responseId": response["id"],
        "promptbus": extension(response),
    }


def render_answer(body: bytes, response: Mapping[str, Any]) -> bytes:
    """The AnswerRenderer of this surface."""
    return orjson.dumps(answer_object(response))


def blocked_object(
    error: ContentBlocked, *, response_id: str, model_version: str | None
) -> dict[str, Any]:
    """A refused prompt or a withheld answer, as Gemini answers one (with status 200)."""
    out: dict[str, Any]
    if isinstance(error, PromptBlocked):
        out = {"promptFeedback": {"blockReason": block_reason(error.finish_reason)}}
    else:
        out = {"candidates": [{"finishReason": finish_reason(error.finish_reason), "index": 0}]}
    if model_version is not None:
        out["modelVersion"] = model_version
    out["responseId"] = response_id
    return out
